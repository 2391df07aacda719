/* cpu_x86.c - run-time x86-64 feature checks (cpu_x86.h). */
#include "model/cpu_x86.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <stdatomic.h>

/* CPUID leaf 1's F16C bit. CPUID traps to the hypervisor in a VM (about a
 * microsecond), and kernels ask per call, so the answer is kept. */
static int has_f16c(void)
{
    static atomic_int known = -1;
    int v = atomic_load_explicit(&known, memory_order_relaxed);
    if (v < 0) {
        unsigned a, b, c, d;
        v = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) ? 1 : 0;
        atomic_store_explicit(&known, v, memory_order_relaxed);
    }
    return v;
}

int cpu_has_fma(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("fma");
}

int cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

int cpu_has_avx2_fma(void)
{
    return cpu_has_avx2() && cpu_has_fma();
}

int cpu_has_avx2_fma_f16c(void)
{
    return cpu_has_avx2_fma() && has_f16c();
}

int cpu_has_avx512f(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

#else
int cpu_has_fma(void) { return 0; }
int cpu_has_avx2(void) { return 0; }
int cpu_has_avx2_fma(void) { return 0; }
int cpu_has_avx2_fma_f16c(void) { return 0; }
int cpu_has_avx512f(void) { return 0; }
#endif
