/* test_decoder_attn.c - model/decoder_attn: a decode step over an f16 cache
 * takes fused AVX2 kernels (conversions inside the products, eight scores
 * per horizontal sum, V lanes summed in registers) that must give the same
 * bits as the general one-token path, which mirrors llama.cpp's order and
 * which test_decoder checks against llama.cpp. The general path runs when
 * the queries of a call attend different lengths, so a call with a decoy
 * query of one position less gives the reference for the same query.
 * Covered: head sizes 64, 128 and 256 (one to four blocks of ggml's dot)
 * and 96 (not a multiple of 64: the fused path must stay off), 1-8 and 12
 * queries (the V kernel's groups of up to four), lengths below 8, not a
 * multiple of 8, below 64, and with and without ggml's double tail; a zero
 * query (equal weights) and cache rows with negative zeros. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model/cpu_x86.h"
#include "model/decoder_internal.h"
#include "model/quant.h"

static uint32_t rng = 2463534242u;

static float rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return (float)(rng >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}

/* query 0..nq-1 attend np positions; the reference call adds a decoy of
 * np - 1 positions, which sends the whole call down the general path */
static void check_case(size_t hd, size_t n_kv_head, size_t kvh, size_t nq, size_t np, size_t layer, int special)
{
    rg_kv_cache kv = {.n_layer = layer + 1, .kv_dim = n_kv_head * hd, .cap = np + 3, .type = RG_KV_F16};
    size_t cells = kv.n_layer * kv.cap * kv.kv_dim;
    uint16_t *k = malloc(cells * sizeof *k), *v = malloc(cells * sizeof *v);
    for (size_t i = 0; i < cells; i++) {
        k[i] = f32_to_fp16(rnd() * 2.0f);
        v[i] = f32_to_fp16(rnd());
        if (special && i % 7 == 0)
            k[i] = v[i] = 0x8000; /* -0 */
    }
    kv.k = k;
    kv.v = v;
    kv.len = np;
    size_t nmax = nq + 1;
    float *qs = malloc(nmax * hd * sizeof *qs), *fused = malloc(nmax * hd * sizeof *fused);
    float *general = malloc(nmax * hd * sizeof *general);
    /* each call gets exactly its scratch, so ASan sees an overrun */
    float *scratch_f = malloc(dec_attn_scratch_floats(nq, np, hd) * sizeof *scratch_f);
    float *scratch_g = malloc(dec_attn_scratch_floats(nmax, np, hd) * sizeof *scratch_g);
    const float *q[16];
    float *out_f[16], *out_g[16];
    size_t lens[16];
    for (size_t i = 0; i < nmax * hd; i++)
        qs[i] = special && i < hd ? 0.0f : rnd() * 3.0f;
    for (size_t i = 0; i < nmax; i++) {
        q[i] = qs + i * hd;
        out_f[i] = fused + i * hd;
        out_g[i] = general + i * hd;
        lens[i] = i < nq ? np : np - 1;
    }
    dec_attend(&kv, layer, kvh, hd, q, lens, nq, out_f, scratch_f, 1);
    dec_attend(&kv, layer, kvh, hd, q, lens, nmax, out_g, scratch_g, 1);
    size_t differ = 0;
    for (size_t i = 0; i < nq * hd; i++)
        differ += memcmp(&fused[i], &general[i], sizeof(float)) != 0;
    CHECK_MSG(differ == 0, "hd %zu, %zu queries over %zu positions: %zu of %zu outputs differ from the general path",
              hd, nq, np, differ, nq * hd);
    size_t finite = 0;
    for (size_t i = 0; i < nq * hd; i++)
        finite += isfinite(fused[i]) && fabsf(fused[i]) <= 1.0f;
    CHECK_MSG(finite == nq * hd, "hd %zu: outputs not within the values' range", hd);
    free(k);
    free(v);
    free(qs);
    free(fused);
    free(general);
    free(scratch_f);
    free(scratch_g);
}

/* The fused V sums against a direct softmax-weighted sum in double: a
 * loose check that the path computes attention at all, independent of the
 * general path (which it could otherwise share a bug with). */
static void check_meaning(void)
{
    const size_t hd = 64, np = 77;
    rg_kv_cache kv = {.n_layer = 1, .kv_dim = hd, .cap = np, .len = np, .type = RG_KV_F16};
    uint16_t *k = malloc(np * hd * sizeof *k), *v = malloc(np * hd * sizeof *v);
    float q0[64], out0[64];
    for (size_t i = 0; i < np * hd; i++) {
        k[i] = f32_to_fp16(rnd());
        v[i] = f32_to_fp16(rnd());
    }
    for (size_t i = 0; i < hd; i++)
        q0[i] = rnd() * 4.0f;
    kv.k = k;
    kv.v = v;
    float *scratch = malloc(dec_attn_scratch_floats(1, np, hd) * sizeof *scratch);
    const float *q[1] = {q0};
    float *out[1] = {out0};
    size_t lens[1] = {np};
    dec_attend(&kv, 0, 0, hd, q, lens, 1, out, scratch, 1);
    double w[77], mx = -1e300, sum = 0;
    for (size_t p = 0; p < np; p++) {
        double d = 0;
        for (size_t i = 0; i < hd; i++)
            d += (double)q0[i] * fp16_to_f32(k[p * hd + i]);
        w[p] = d / sqrt((double)hd);
        mx = w[p] > mx ? w[p] : mx;
    }
    for (size_t p = 0; p < np; p++)
        sum += (w[p] = exp(w[p] - mx));
    double worst = 0;
    for (size_t i = 0; i < hd; i++) {
        double ref = 0;
        for (size_t p = 0; p < np; p++)
            ref += w[p] / sum * fp16_to_f32(v[p * hd + i]);
        double err = fabs(ref - out0[i]);
        worst = err > worst ? err : worst;
    }
    /* f16 queries and weights: ~1e-3 of the values' scale */
    CHECK_MSG(worst < 5e-3, "attention output off a double-precision softmax by %.3g", worst);
    free(k);
    free(v);
    free(scratch);
}

int main(void)
{
    if (!cpu_has_avx2_fma_f16c())
        printf("test_decoder_attn: no AVX2/FMA/F16C on this CPU: the fused path does not run, only the general one\n");
    static const size_t lens[] = {2, 7, 8, 9, 33, 63, 64, 65, 96, 100, 128, 130, 200, 257, 530, 550};
    static const size_t hds[] = {64, 128, 256, 96};
    static const size_t nqs[] = {1, 2, 3, 4, 5, 6, 7, 8, 12};
    for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++)
        for (size_t qi = 0; qi < sizeof nqs / sizeof nqs[0]; qi++)
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
                check_case(hds[hi], 3, (qi + li) % 3, nqs[qi], lens[li], li % 2, (qi + li) % 5 == 0);
    check_meaning();
    return check_finish("test_decoder_attn");
}
