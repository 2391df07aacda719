/* bert_config.c - reads and validates a BERT config.json (see bert_config.h). */
#include "model/bert_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"

#define BERT_CONFIG_MAX_BYTES (1u << 20)

static rg_status get_size(const cJSON *root, const char *what, const char *field, size_t lo, size_t hi,
                          size_t *out, rg_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!v)
        return rg_error(e, RG_ERR_CORRUPT, "%s: missing field \"%s\"", what, field);
    if (!cJSON_IsNumber(v))
        return rg_error(e, RG_ERR_CORRUPT, "%s: field \"%s\" must be a number", what, field);
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
        return rg_error(e, RG_ERR_CORRUPT, "%s: field \"%s\" = %g must be an integer in [%zu, %zu]", what, field, d,
                        lo, hi);
    *out = (size_t)d;
    return RG_OK;
}

static rg_status get_string(const cJSON *root, const char *what, const char *field, int required, const char **out,
                            rg_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    *out = NULL;
    if (!v) {
        if (required)
            return rg_error(e, RG_ERR_CORRUPT, "%s: missing field \"%s\"", what, field);
        return RG_OK;
    }
    if (!cJSON_IsString(v) || !v->valuestring)
        return rg_error(e, RG_ERR_CORRUPT, "%s: field \"%s\" must be a string", what, field);
    *out = v->valuestring;
    return RG_OK;
}

static rg_status parse_root(const cJSON *root, const char *what, rg_bert_config *c, rg_err *e)
{
    rg_status st;
    if (!cJSON_IsObject(root))
        return rg_error(e, RG_ERR_CORRUPT, "%s: not a JSON object", what);

    const char *model_type, *act, *pos_type;
    if ((st = get_string(root, what, "model_type", 1, &model_type, e)) != RG_OK)
        return st;
    if (strcmp(model_type, "bert") != 0)
        return rg_error(e, RG_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not supported (expected \"bert\")", what,
                        model_type);
    if ((st = get_string(root, what, "hidden_act", 1, &act, e)) != RG_OK)
        return st;
    if (strcmp(act, "gelu") != 0)
        return rg_error(e, RG_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported (expected \"gelu\")", what,
                        act);
    if ((st = get_string(root, what, "position_embedding_type", 0, &pos_type, e)) != RG_OK)
        return st;
    if (pos_type && strcmp(pos_type, "absolute") != 0)
        return rg_error(e, RG_ERR_UNSUPPORTED,
                        "%s: position_embedding_type \"%s\" is not supported (expected \"absolute\")", what, pos_type);

    if ((st = get_size(root, what, "hidden_size", 1, BERT_MAX_DIM, &c->hidden_size, e)) != RG_OK ||
        (st = get_size(root, what, "num_hidden_layers", 1, BERT_MAX_LAYERS, &c->num_hidden_layers, e)) != RG_OK ||
        (st = get_size(root, what, "num_attention_heads", 1, BERT_MAX_DIM, &c->num_attention_heads, e)) != RG_OK ||
        (st = get_size(root, what, "intermediate_size", 1, BERT_MAX_DIM * 8, &c->intermediate_size, e)) != RG_OK ||
        (st = get_size(root, what, "max_position_embeddings", 1, BERT_MAX_DIM, &c->max_position_embeddings, e)) !=
            RG_OK ||
        (st = get_size(root, what, "type_vocab_size", 1, 1024, &c->type_vocab_size, e)) != RG_OK ||
        (st = get_size(root, what, "vocab_size", 1, BERT_MAX_VOCAB, &c->vocab_size, e)) != RG_OK)
        return st;
    if (c->hidden_size % c->num_attention_heads != 0)
        return rg_error(e, RG_ERR_CORRUPT,
                        "%s: hidden_size %zu is not divisible by num_attention_heads %zu", what, c->hidden_size,
                        c->num_attention_heads);

    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_eps");
    if (!eps)
        return rg_error(e, RG_ERR_CORRUPT, "%s: missing field \"layer_norm_eps\"", what);
    if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0.0 && eps->valuedouble < 1.0))
        return rg_error(e, RG_ERR_CORRUPT, "%s: field \"layer_norm_eps\" must be a number in (0, 1)", what);
    c->layer_norm_eps = (float)eps->valuedouble;
    return RG_OK;
}

rg_status bert_config_parse(const char *json, size_t len, const char *what, rg_bert_config *out, rg_err *e)
{
    memset(out, 0, sizeof *out);
    if (!what)
        what = "config.json";
    cJSON *root = cJSON_ParseWithLength(json ? json : "", json ? len : 0);
    if (!root)
        return rg_error(e, RG_ERR_CORRUPT, "%s: not valid JSON", what);
    rg_status st = parse_root(root, what, out, e);
    cJSON_Delete(root);
    if (st != RG_OK)
        memset(out, 0, sizeof *out);
    return st;
}

rg_status bert_config_load(const char *path, rg_bert_config *out, rg_err *e)
{
    rg_buf b;
    rg_buf_init(&b, 0);
    rg_status st = fs_read_file(path, BERT_CONFIG_MAX_BYTES, &b, e);
    if (st == RG_OK)
        st = bert_config_parse(b.data, b.len, path, out, e);
    rg_buf_free(&b);
    return st;
}
