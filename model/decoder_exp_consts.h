/* decoder_exp_consts.h - the constants of ggml_v_expf, the exponential of
 * llama.cpp's CPU backend, shared by the CPU path's implementation
 * (model/decoder_math.c) and the CUDA decoder's copy of its arithmetic
 * (model/decoder_cuda_ggml.cu), which must compute the same floats. */
#ifndef RAGD_MODEL_DECODER_EXP_CONSTS_H
#define RAGD_MODEL_DECODER_EXP_CONSTS_H

/* the polynomial's coefficients, highest degree first */
#define EXP_C5 0x1.0e4020p-7f
#define EXP_C4 0x1.573e2ep-5f
#define EXP_C3 0x1.555e66p-3f
#define EXP_C2 0x1.fffdb6p-2f
#define EXP_C1 0x1.ffffecp-1f
/* round(x log2 e) through the 1.5 * 2^23 trick; ln 2 in a short high part
 * and a correction */
#define EXP_SHIFT 0x1.8p23f
#define EXP_LOG2E 0x1.715476p+0f
#define EXP_LN2_HI 0x1.62e4p-1f
#define EXP_LN2_LO 0x1.7f7d1cp-20f

#endif
