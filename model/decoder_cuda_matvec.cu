// decoder_cuda_matvec.cu - the decoder's products of a few token rows
// (decode steps) on its own kernel, over fp16 weight rows or over weight
// matrices kept on the GPU in their GGUF blocks (see
// decoder_cuda_kernels.cuh), and the kernel that unpacks block rows into
// fp16 or fp32 (the fp16 rows feed cuBLAS in prefill).
//
// Why: a decode step reads every weight once, so its time is the bytes read.
// Q4_1 is 5 bits a weight, Q8_0 8.5, Q4_K 4.5; the fp16 copies the decoder
// made before were 16, and for a model of 30B parameters or more they are
// also the difference between fitting on one card or not.
//
// The values are model/quant's dequantization, bit for bit: every product
// and sum that model/quant rounds separately is rounded separately here
// (__fmul_rn / __fadd_rn / __fsub_rn, which nvcc never fuses into an FMA).
// The dot products then use those exact values (not fp16 roundings of
// them) with fp32 accumulation.
#include "model/decoder_cuda_blocks.cuh"

#define MVQ_WARPS 4
#define MVQ_MAX_N 16
#define DQ_THREADS 256

// ---- the matrix-vector product ----------------------------------------------------------------

// Weight rows per warp: each token row's 8 values (one 16-byte load from
// L1) serve this many weight rows, so the token rows' reloads, which
// dominate at 16 tokens, are shared by more rows as the batch grows.
template <int N> struct mvq_rows { enum { value = N >= 8 ? 4 : 2 }; };

// The end of a product kernel: acc[k][t] is this lane's partial sum of
// weight row r0 + k with token row t; the 32 lanes' sums of each pair go
// through the warp's slice of shared memory (mine, padded so lanes hit
// different banks) and lane j adds those of pair j, j + 32, ... in lane
// order (one warp barrier for all pairs, where a butterfly takes five
// shuffles per pair): a pair's sum never depends on the other rows.
template <int R, int N>
__device__ static inline void mv_reduce(float (*mine)[33], const float (&acc)[R][N], int lane, int n, int nr, int r0,
                                        float *y, int ldy)
{
#pragma unroll
    for (int k = 0; k < R; k++)
#pragma unroll
        for (int t = 0; t < N; t++)
            if (t < n)
                mine[k * n + t][lane] = acc[k][t];
    __syncwarp();
    for (int j = lane; j < nr * n; j += 32) {
        float s = 0.0f;
        for (int i = 0; i < 32; i++)
            s += mine[j][i];
        y[(size_t)(j % n) * (size_t)ldy + (size_t)(r0 + j / n)] = s;
    }
}


// y[t * ldy + r] = sum_k W[r, k] x[t, k] for t < n (n <= N), r < out. Each
// warp takes R weight rows; lane j unpacks pieces j, j + 32, ... of each
// (8 values in registers) and multiplies them with the same 8 values of
// every token row. The partial sums then go through shared memory and
// lane j adds the 32 lanes' sums of one (weight row, token row) pair in
// lane order (one warp barrier for all pairs, where a butterfly takes five
// shuffles per pair). A token's output is computed by the same operations
// in the same order whatever the other rows of the call are (and whatever
// N), so a sequence's logits do not depend on the batch it is decoded in
// (cuBLAS picks kernels, tilings and split-K reductions by the batch's
// size). The weights are read once for all n rows.
template <uint32_t T, int N>
__global__ static void __launch_bounds__(MVQ_WARPS * 32)
    k_matvec_q(const uint8_t *__restrict__ w, size_t row_bytes, const cu_f16 *__restrict__ x, int n, int in, int out,
               float *__restrict__ y, int ldy)
{
    constexpr int R = mvq_rows<N>::value;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int r0 = (blockIdx.x * MVQ_WARPS + warp) * R;
    if (r0 >= out) // the whole warp leaves together
        return;
    int nr = out - r0 < R ? out - r0 : R;
    int pieces = in / 8;
    const uint4 *xs = reinterpret_cast<const uint4 *>(x);
    float acc[R][N];
#pragma unroll
    for (int k = 0; k < R; k++)
#pragma unroll
        for (int t = 0; t < N; t++)
            acc[k][t] = 0.0f;
    for (int p = lane; p < pieces; p += 32) {
        float wv[R][8];
#pragma unroll
        for (int k = 0; k < R; k++) // missing rows read the first again; their sums are dropped
            dq_piece<T>(w + (size_t)(k < nr ? r0 + k : r0) * row_bytes, p, wv[k]);
#pragma unroll
        for (int t = 0; t < N; t++) {
            if (t >= n)
                break;
            union { // eight halves in one load; a union, not a cast (aliasing)
                uint4 u4;
                __half2 h2[4];
            } xv;
            CUDASIM_ALIGNED(xs + (size_t)t * (size_t)pieces + (size_t)p, 16);
            xv.u4 = xs[(size_t)t * (size_t)pieces + (size_t)p];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float2 xf = __half22float2(xv.h2[j]);
#pragma unroll
                for (int k = 0; k < R; k++) {
                    acc[k][t] = fmaf(wv[k][2 * j], xf.x, acc[k][t]);
                    acc[k][t] = fmaf(wv[k][2 * j + 1], xf.y, acc[k][t]);
                }
            }
        }
    }
    __shared__ float part[MVQ_WARPS][R * N][33];
    mv_reduce<R, N>(part[warp], acc, lane, n, nr, r0, y, ldy);
}

template <uint32_t T, int N>
static void launch_mvq(cudaStream_t s, const void *w, size_t row_bytes, const cu_f16 *x, int n, int in, int out,
                       float *y, int ldy)
{
    int per_block = MVQ_WARPS * mvq_rows<N>::value;
    k_matvec_q<T, N><<<(unsigned)((out + per_block - 1) / per_block), MVQ_WARPS * 32, 0, s>>>(
        static_cast<const uint8_t *>(w), row_bytes, x, n, in, out, y, ldy);
}

// Token counts go up in buckets (1, 2, 4, 8, 16): the kernel's loops skip
// the rows past n, so five instantiations a type cover every count.
template <uint32_t T>
static void launch_mvq_n(cudaStream_t s, const void *w, size_t row_bytes, const cu_f16 *x, int n, int in, int out,
                         float *y, int ldy)
{
    if (n <= 1)
        launch_mvq<T, 1>(s, w, row_bytes, x, n, in, out, y, ldy);
    else if (n <= 2)
        launch_mvq<T, 2>(s, w, row_bytes, x, n, in, out, y, ldy);
    else if (n <= 4)
        launch_mvq<T, 4>(s, w, row_bytes, x, n, in, out, y, ldy);
    else if (n <= 8)
        launch_mvq<T, 8>(s, w, row_bytes, x, n, in, out, y, ldy);
    else
        launch_mvq<T, 16>(s, w, row_bytes, x, n, in, out, y, ldy);
}

// ---- unpacking rows ---------------------------------------------------------------------

// Eight values as eight fp16 (one 16-byte store) or eight floats.
__device__ static inline void put8(cu_f16 *o, const float *v)
{
    union {
        uint4 u4;
        __half2 h2[4];
    } pk;
#pragma unroll
    for (int j = 0; j < 4; j++)
        pk.h2[j] = __halves2half2(__float2half_rn(v[2 * j]), __float2half_rn(v[2 * j + 1]));
    CUDASIM_ALIGNED(o, 16);
    *reinterpret_cast<uint4 *>(o) = pk.u4;
}

__device__ static inline void put8(float *o, const float *v)
{
#pragma unroll
    for (int j = 0; j < 8; j++)
        o[j] = v[j];
}

// One thread per piece: consecutive threads unpack consecutive pieces of a
// row and store consecutive 16 (fp16) or 32 bytes.
template <uint32_t T, typename O>
__global__ static void k_dequant(const uint8_t *__restrict__ w, size_t row_bytes, int rows, int cols,
                                 O *__restrict__ out)
{
    size_t pieces = (size_t)cols / 8, total = (size_t)rows * pieces;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / pieces;
        int p = (int)(i % pieces);
        float v[8];
        dq_piece<T>(w + r * row_bytes, p, v);
        put8(out + r * (size_t)cols + (size_t)p * 8, v);
    }
}

template <uint32_t T, typename O>
static void launch_dq(cudaStream_t s, const void *w, size_t row_bytes, int rows, int cols, O *out)
{
    size_t total = (size_t)rows * (size_t)(cols / 8);
    size_t blocks = (total + DQ_THREADS - 1) / DQ_THREADS;
    if (blocks > 65535)
        blocks = 65535; // a grid-stride loop takes the rest
    if (blocks == 0)
        return;
    k_dequant<T, O><<<(unsigned)blocks, DQ_THREADS, 0, s>>>(static_cast<const uint8_t *>(w), row_bytes, rows, cols,
                                                            out);
}

// ---- launchers ------------------------------------------------------------------------

int dec_cu_blocks_on_device(uint32_t type)
{
    switch (type) {
    case GGML_TYPE_Q4_0:
    case GGML_TYPE_Q4_1:
    case GGML_TYPE_Q5_0:
    case GGML_TYPE_Q5_1:
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K:
    case GGML_TYPE_Q6_K: return 1;
    default: return 0;
    }
}

int dec_cu_matvec_takes(uint32_t type, int rows, int in, int max_rows, const void *w, size_t row_bytes,
                        const void *x)
{
    if (rows < 1 || rows > max_rows || rows > MVQ_MAX_N || ((uintptr_t)x & 15))
        return 0;
    if (type == GGML_TYPE_F16) // 16-byte loads of weights and token rows
        return in % 8 == 0 && ((uintptr_t)w & 15) == 0 && row_bytes % 16 == 0;
    return dec_cu_blocks_on_device(type) && in % 32 == 0;
}

rg_status dec_cu_matvec(cudaStream_t s, uint32_t type, const void *w, size_t row_bytes, const cu_f16 *x, int n,
                        int in, int out, float *y, int ldy, rg_err *e)
{
    if (!dec_cu_matvec_takes(type, n, in, MVQ_MAX_N, w, row_bytes, x) || out < 0)
        return rg_error(e, RG_ERR_INTERNAL, "dec_cu_matvec: type %u, %d rows of %d", (unsigned)type, n, in);
    if (out == 0)
        return RG_OK;
#define MVQ_CALL(T) launch_mvq_n<T>(s, w, row_bytes, x, n, in, out, y, ldy)
    if (type == GGML_TYPE_F16)
        MVQ_CALL(GGML_TYPE_F16);
    else
        DEC_CU_QUANT_DISPATCH(type, MVQ_CALL)
#undef MVQ_CALL
    return cu_check(cudaGetLastError(), "decoder product (matvec)", e);
}

rg_status dec_cu_dequant(cudaStream_t s, uint32_t type, const void *w, size_t row_bytes, int rows, int cols, void *out,
                         dec_cu_act ot, rg_err *e)
{
    if (!dec_cu_blocks_on_device(type) || cols % 32 || rows < 0 || cols < 0)
        return rg_error(e, RG_ERR_INTERNAL, "dec_cu_dequant: type %u, %d x %d", (unsigned)type, rows, cols);
    if (ot == DEC_CU_F32) {
#define DQ_CALL(T) launch_dq<T, float>(s, w, row_bytes, rows, cols, static_cast<float *>(out))
        DEC_CU_QUANT_DISPATCH(type, DQ_CALL)
#undef DQ_CALL
    } else {
#define DQ_CALL(T) launch_dq<T, cu_f16>(s, w, row_bytes, rows, cols, static_cast<cu_f16 *>(out))
        DEC_CU_QUANT_DISPATCH(type, DQ_CALL)
#undef DQ_CALL
    }
    return cu_check(cudaGetLastError(), "unpacking quantized weights", e);
}
