/* gemm_cpu.h - single-threaded float matrix product with a pre-packed right
 * operand, for the encoder's CPU path (model/encoder_cpu.c).
 *
 * Why a hand-written GEMM although the project uses OpenBLAS for products:
 * measured, not assumed. The same encoder (own pool, fused Q|K|V, row
 * tiles, per-(sequence, head) attention, padding-free embedding) was run
 * with every product as a single-threaded cblas_sgemm call from the pool's
 * threads (commit 78c80d0; OpenBLAS 0.3.21 Debian 12 has no per-thread
 * thread count, so it was set to 1 process-wide) beside this kernel and
 * sentence-transformers, in the same runs (docs/BENCHMARKS.md, "OpenBLAS
 * or gemm_cpu"). One CPU each, ragd / sentence-transformers, OpenBLAS vs
 * this kernel: short batch 1 0.96-1.08 vs 2.36-2.50, short batch 64
 * 1.19-1.38 vs 1.26-1.53, 256 tokens batch 1 0.99-1.07 vs 1.26-1.33,
 * 256 tokens batch 64 0.97-1.11 vs 1.27-1.43. With OpenBLAS ragd only ties
 * PyTorch in three of the four cells the issue says it must beat; this
 * kernel beats it in all four and is 1.2-2.5x faster than OpenBLAS per
 * encoder call on three. The reasons: OpenBLAS re-packs the whole weight on
 * every call (a short text's product is 18 rows against a 1152 x 384
 * weight), and for rows to come out bit-identical whatever tile computes
 * them its calls must be whole 16-row blocks (its edge and small-matrix
 * kernels sum in another order), which nearly doubles a short text's work.
 * Here the weights are packed once at load and A is read in place.
 *
 * The inner kernel computes a 6 x 16 block of C over the whole K: AVX2+FMA
 * when the CPU has them (checked at run time, so the binary runs on any
 * x86-64), portable C otherwise; with AVX-512F, 12 x 16 blocks where the
 * rows allow. Every kernel gives each element the same fused multiply-adds
 * in the same order, so results do not depend on the kernel, the tiling or
 * the thread that ran them; they match a plain triple loop up to float
 * rounding (the sum order differs). Measured on one Zen 4 core (thread CPU
 * time, K 384-1536): OpenBLAS 0.3.21 sgemm 60-92 GFLOP/s, AVX2 kernel
 * 95-100, AVX-512 kernel 104-111. */
#ifndef RAGD_MODEL_GEMM_CPU_H
#define RAGD_MODEL_GEMM_CPU_H

#include <stddef.h>

#define GEMM_MR 6  /* rows of A per inner kernel */
#define GEMM_NR 16 /* columns of B per inner kernel (one packed panel) */

/* Floats of a packed B of K x N (N rounded up to GEMM_NR, zero-padded). */
size_t gemm_bpack_floats(size_t K, size_t N);

/* Packs B[k][n] = w[n * ldw + k] (an nn.Linear weight [N, K], or keys
 * [N, K] for scores Q K^T) into bp. */
void gemm_pack_b_nk(const float *w, size_t ldw, size_t N, size_t K, float *bp);

/* Packs B[k][n] = b[k * ldb + n] (a row-major [K, N] matrix). */
void gemm_pack_b_kn(const float *b, size_t ldb, size_t K, size_t N, float *bp);

/* Floats of the A scratch that gemm_packed needs for any product of up to
 * M rows and K columns of A (A is read in place; only a ragged last block
 * of fewer than GEMM_MR rows is copied there). */
size_t gemm_apack_floats(size_t M, size_t K);

/* C[M, N] = A[M, K] B + bias (bias[N], may be NULL), A row-major with row
 * stride lda, C with row stride ldc, B packed by gemm_pack_b_*; apack:
 * scratch of gemm_apack_floats(M, K) floats. */
void gemm_packed(const float *a, size_t lda, size_t M, size_t K, const float *bp, size_t N, const float *bias, float *c,
                 size_t ldc, float *apack);

/* Whether the AVX2+FMA (and AVX-512F) kernels are in use on this CPU. */
int gemm_cpu_has_avx2(void);
int gemm_cpu_has_avx512(void);

/* The best kernel level this CPU runs: 0 portable C, 1 AVX2+FMA, 2 AVX-512F. */
int gemm_cpu_level(void);

/* gemm_packed with the kernels of at most the given level (capped at
 * gemm_cpu_level()), so that tests can check every kernel on one machine. */
void gemm_packed_level(int level, const float *a, size_t lda, size_t M, size_t K, const float *bp, size_t N,
                       const float *bias, float *c, size_t ldc, float *apack);

#endif
