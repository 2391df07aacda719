/* cpu_x86.h - which x86-64 vector instructions this CPU offers, for the
 * kernels compiled with function-level target attributes (the default build
 * runs on any x86-64 and picks its kernels at run time). All return 0 off
 * x86-64. One place for the checks because compilers differ in what
 * __builtin_cpu_supports knows: clang 14 rejects "f16c", so F16C is read
 * from CPUID here. */
#ifndef RAGD_MODEL_CPU_X86_H
#define RAGD_MODEL_CPU_X86_H

int cpu_has_fma(void);
int cpu_has_avx2(void);
int cpu_has_avx2_fma(void);
int cpu_has_avx2_fma_f16c(void); /* the quantized and f16 kernels' set */
int cpu_has_avx512f(void);

#endif
