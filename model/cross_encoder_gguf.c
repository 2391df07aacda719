/* cross_encoder_gguf.c - the pooler and classifier of a BERT cross-encoder
 * GGUF file (see cross_encoder_gguf.h); the encoder itself is read by
 * model/encoder_gguf.c. */
#include "model/cross_encoder_gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "model/quant.h"

#define CE_RANK_POOLING 4 /* llama.cpp LLAMA_POOLING_TYPE_RANK */

static rg_status check_meta(const gguf_file *g, size_t *H, rg_err *e)
{
    const gguf_kv *kv = gguf_find_kv(g, "general.architecture");
    const char *arch = kv ? gguf_kv_string(kv, NULL) : NULL;
    if (!arch)
        return rg_error(e, RG_ERR_CORRUPT, "missing metadata string general.architecture");
    if (strcmp(arch, "bert") != 0)
        return rg_error(e, RG_ERR_UNSUPPORTED,
                        "architecture \"%.64s\" is not supported as a cross-encoder (only \"bert\")", arch);
    uint64_t h;
    kv = gguf_find_kv(g, "bert.embedding_length");
    if (!kv || gguf_kv_u64(kv, &h, e) != RG_OK || h < 1 || h > (1u << 16))
        return rg_error(e, RG_ERR_CORRUPT, "metadata key bert.embedding_length is missing or out of range");
    *H = (size_t)h;

    /* Tensors first: a file from llama.cpp's converter lacks the pooler and
     * the pooling type both, and the pooler is the reason to say. */
    if (!gguf_tensor_find(g, "cls.output.weight"))
        return rg_error(e, RG_ERR_UNSUPPORTED,
                        "no classifier (tensor cls.output.weight): not a BERT cross-encoder "
                        "(BertForSequenceClassification); an embedding model goes to --embed-model");
    if (!gguf_tensor_find(g, "cls.weight"))
        return rg_error(e, RG_ERR_UNSUPPORTED,
                        "no pooler (tensor cls.weight): BertForSequenceClassification's logit needs BERT's pooler "
                        "(llama.cpp's convert_hf_to_gguf.py drops it; scripts/make_bert_gguf.py keeps it as cls.*)");
    const gguf_tensor *out = gguf_tensor_find(g, "cls.output.weight");
    if (out->n_dims == 2 && out->dims[0] == (int64_t)h && out->dims[1] != 1)
        return rg_error(e, RG_ERR_UNSUPPORTED, "tensor cls.output.weight has %lld outputs; a reranker needs one label",
                        (long long)out->dims[1]);

    kv = gguf_find_kv(g, "bert.classifier.output_labels");
    if (kv) {
        if (gguf_value_type(kv) != GGUF_TYPE_ARRAY || gguf_kv_array_type(kv) != GGUF_TYPE_STRING)
            return rg_error(e, RG_ERR_CORRUPT, "metadata key bert.classifier.output_labels must be an array of strings");
        size_t n = gguf_kv_array_len(kv);
        if (n != 1)
            return rg_error(e, RG_ERR_UNSUPPORTED,
                            "bert.classifier.output_labels has %zu labels; a reranker needs exactly one", n);
    }

    kv = gguf_find_kv(g, "bert.pooling_type");
    if (!kv)
        return rg_error(e, RG_ERR_UNSUPPORTED, "no bert.pooling_type; a cross-encoder needs 4 (rank)");
    uint32_t p;
    if (gguf_kv_u32(kv, &p, e) != RG_OK)
        return rg_error(e, RG_ERR_CORRUPT, "metadata key bert.pooling_type must be an integer");
    if (p != CE_RANK_POOLING)
        return rg_error(e, RG_ERR_UNSUPPORTED,
                        "bert.pooling_type is %u; a cross-encoder needs 4 (rank): 1 mean and 2 cls are embedding "
                        "models (--embed-model)", p);
    return RG_OK;
}

void cross_encoder_gguf_head_free(ce_gguf_head *h)
{
    if (!h)
        return;
    free(h->pool_w);
    free(h->pool_b);
    free(h->cls_w);
    memset(h, 0, sizeof *h);
}

rg_status cross_encoder_gguf_head(const char *path, ce_gguf_head *out, rg_err *e)
{
    memset(out, 0, sizeof *out);
    gguf_file *g = NULL;
    rg_status st = gguf_open(path, &g, e);
    if (st != RG_OK)
        return st; /* gguf_open names the file */
    float *cls_b = NULL;
    size_t H = 0;
    if ((st = check_meta(g, &H, e)) != RG_OK)
        goto out;
    out->H = H;
    /* Hugging Face shapes: pooler [H, H], classifier [1, H] (GGUF [H, 1]) */
    if ((st = gguf_tensor_load_f32(g, "cls.weight", H, H, &out->pool_w, e)) != RG_OK ||
        (st = gguf_tensor_load_f32(g, "cls.bias", H, 0, &out->pool_b, e)) != RG_OK ||
        (st = gguf_tensor_load_f32(g, "cls.output.weight", 1, H, &out->cls_w, e)) != RG_OK ||
        (st = gguf_tensor_load_f32(g, "cls.output.bias", 1, 0, &cls_b, e)) != RG_OK)
        goto out;
    out->cls_b = cls_b[0];
out:
    free(cls_b);
    gguf_close(g);
    if (st != RG_OK) {
        cross_encoder_gguf_head_free(out);
        rg_error_wrap(e, "%s", path);
    }
    return st;
}
