/* encoder_cpu.c - the BERT transformer on the CPU: OpenBLAS sgemm for the
 * linear layers, model/ops_cpu for the rest (see encoder.h). */
#include <stdlib.h>

#include "model/encoder_internal.h"
#include "model/ops_cpu.h"

rg_status encoder_forward_cpu(const rg_encoder *enc, const int32_t *ids, const int32_t *type_ids,
                              const int32_t *mask, size_t B, size_t T, float *hidden, rg_err *e)
{
    const rg_bert_config *c = &enc->cfg;
    size_t H = c->hidden_size, I = c->intermediate_size, R = B * T;
    float *x = hidden; /* the residual stream lives in the caller's buffer */
    float *q = malloc(R * H * sizeof *q), *k = malloc(R * H * sizeof *k), *v = malloc(R * H * sizeof *v);
    float *ctx = malloc(R * H * sizeof *ctx), *inter = malloc(R * I * sizeof *inter);
    float *scores = malloc(T * T * sizeof *scores);
    if (!q || !k || !v || !ctx || !inter || !scores) {
        free(q), free(k), free(v), free(ctx), free(inter), free(scores);
        return rg_error(e, RG_ERR_NOMEM, "encoder: out of memory for a %zu x %zu batch", B, T);
    }

    /* Embeddings: word + position + token type, then LayerNorm. */
    for (size_t b = 0; b < B; b++) {
        for (size_t t = 0; t < T; t++) {
            size_t r = b * T + t;
            const float *we = enc->word_emb + (size_t)ids[r] * H;
            const float *pe = enc->pos_emb + t * H;
            const float *te = enc->type_emb + (size_t)(type_ids ? type_ids[r] : 0) * H;
            float *row = x + r * H;
            for (size_t i = 0; i < H; i++)
                row[i] = we[i] + pe[i] + te[i];
        }
    }
    ops_add_layernorm(x, NULL, R, H, enc->emb_ln_g, enc->emb_ln_b, c->layer_norm_eps);

    for (size_t l = 0; l < c->num_hidden_layers; l++) {
        const enc_layer *ly = &enc->layers[l];
        ops_linear(x, R, H, ly->q_w, ly->q_b, H, q);
        ops_linear(x, R, H, ly->k_w, ly->k_b, H, k);
        ops_linear(x, R, H, ly->v_w, ly->v_b, H, v);
        ops_attention(q, k, v, mask, B, T, H, c->num_attention_heads, ctx, scores);
        ops_linear(ctx, R, H, ly->ao_w, ly->ao_b, H, q); /* q reused as the projection's output */
        ops_add_layernorm(x, q, R, H, ly->aln_g, ly->aln_b, c->layer_norm_eps);
        ops_linear(x, R, H, ly->i_w, ly->i_b, I, inter);
        ops_gelu(inter, R * I);
        ops_linear(inter, R, I, ly->o_w, ly->o_b, H, q);
        ops_add_layernorm(x, q, R, H, ly->oln_g, ly->oln_b, c->layer_norm_eps);
    }
    free(q), free(k), free(v), free(ctx), free(inter), free(scores);
    return RG_OK;
}

