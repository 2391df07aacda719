/* cpu_x86.c - run-time x86-64 feature checks (cpu_x86.h). */
#include "model/cpu_x86.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <stdatomic.h>

enum { HAS_FMA = 1, HAS_AVX2 = 2, HAS_F16C = 4, HAS_AVX512F = 8, KNOWN = 16 };

/* The features, read once: kernels ask per row or per call, and CPUID (for
 * F16C) traps to the hypervisor in a VM, about a microsecond. Two threads
 * racing on the first call compute the same value. */
static int features(void)
{
    static atomic_int known;
    int v = atomic_load_explicit(&known, memory_order_relaxed);
    if (!v) {
        __builtin_cpu_init();
        unsigned a, b, c, d;
        v = KNOWN | (__builtin_cpu_supports("fma") ? HAS_FMA : 0) | (__builtin_cpu_supports("avx2") ? HAS_AVX2 : 0) |
            (__builtin_cpu_supports("avx512f") ? HAS_AVX512F : 0) |
            (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) ? HAS_F16C : 0);
        atomic_store_explicit(&known, v, memory_order_relaxed);
    }
    return v;
}

static int has(int want) { return (features() & want) == want; }

int cpu_has_fma(void) { return has(HAS_FMA); }
int cpu_has_avx2(void) { return has(HAS_AVX2); }
int cpu_has_avx2_fma(void) { return has(HAS_AVX2 | HAS_FMA); }
int cpu_has_avx2_fma_f16c(void) { return has(HAS_AVX2 | HAS_FMA | HAS_F16C); }
int cpu_has_avx512f(void) { return has(HAS_AVX512F); }

#else
int cpu_has_fma(void) { return 0; }
int cpu_has_avx2(void) { return 0; }
int cpu_has_avx2_fma(void) { return 0; }
int cpu_has_avx2_fma_f16c(void) { return 0; }
int cpu_has_avx512f(void) { return 0; }
#endif
