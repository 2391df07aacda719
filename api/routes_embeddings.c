/* POST /v1/embeddings (OpenAI- and NIM-compatible) and GET /v1/models. */
#include <stdlib.h>
#include <string.h>

#include "api/json_out.h"
#include "api/routes.h"
#include "api/server.h"
#include "index/embedder.h"
#include "rerank/reranker.h"

#define EMBEDDINGS_MAX_INPUTS 2048

void route_models(rg_request *r)
{
    cJSON *data;
    cJSON *o = json_list(&data);
    rg_embedder *em = r->server->semantic.embedder;
    if (em) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", embedder_model_id(em));
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", (double)(r->server->started_ms / 1000));
        cJSON_AddStringToObject(m, "owned_by", "ragd");
        cJSON_AddStringToObject(m, "kind", "embedding");
        cJSON_AddNumberToObject(m, "dimensions", (double)embedder_dim(em));
        cJSON_AddNumberToObject(m, "max_tokens", (double)embedder_max_tokens(em));
        cJSON_AddItemToArray(data, m);
    }
    rg_reranker *rr = r->server->semantic.reranker;
    if (rr) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", reranker_model_id(rr));
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", (double)(r->server->started_ms / 1000));
        cJSON_AddStringToObject(m, "owned_by", "ragd");
        cJSON_AddStringToObject(m, "kind", "reranker");
        cJSON_AddStringToObject(m, "method", reranker_method(rr));
        if (reranker_precision(rr))
            cJSON_AddStringToObject(m, "precision", reranker_precision(rr));
        cJSON_AddNumberToObject(m, "max_tokens", (double)reranker_max_tokens(rr));
        cJSON_AddItemToArray(data, m);
    }
    rg_generator *gen = r->server->generator;
    if (gen) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", generator_model_id(gen));
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", (double)(r->server->started_ms / 1000));
        cJSON_AddStringToObject(m, "owned_by", "ragd");
        cJSON_AddStringToObject(m, "kind", "generator");
        cJSON_AddNumberToObject(m, "context_length", (double)generator_context(gen));
        cJSON_AddNumberToObject(m, "max_model_len", (double)generator_context(gen));
        cJSON_AddItemToArray(data, m);
    }
    http_json(r, 200, o);
}

/* The model a request names is ours when it is our id, our id with a
 * "-query"/"-passage" suffix (older NIMs), or "<org>/<our id>". */
static int model_matches(const char *asked, const char *id, const char **input_type)
{
    const char *slash = strrchr(asked, '/');
    if (slash)
        asked = slash + 1;
    size_t n = strlen(id);
    if (strncmp(asked, id, n) != 0)
        return 0;
    if (asked[n] == '\0')
        return 1;
    if (strcmp(asked + n, "-query") == 0 || strcmp(asked + n, "-passage") == 0) {
        *input_type = asked + n + 1;
        return 1;
    }
    return 0;
}

/* Standard base64 of little-endian float32s (what the openai client decodes). */
static char *base64_floats(const float *v, size_t n)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = (const unsigned char *)v;
    size_t len = n * sizeof(float);
    char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i += 3) {
        unsigned x = (unsigned)p[i] << 16 | (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < len ? p[i + 2] : 0);
        *o++ = alphabet[x >> 18 & 63];
        *o++ = alphabet[x >> 12 & 63];
        *o++ = i + 1 < len ? alphabet[x >> 6 & 63] : '=';
        *o++ = i + 2 < len ? alphabet[x & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* Collects the input strings into *texts (which the caller frees, also on
 * failure); answers 400 and returns -1 on bad input. */
static int collect_inputs(rg_request *r, const cJSON *input, const char ***texts, size_t *n)
{
    static const char token_ids[] =
        "'input' holds token ids; ragd's model has its own tokenizer, so send the texts "
        "(LangChain OpenAIEmbeddings: set check_embedding_ctx_length=False)";
    *n = 0;
    if (cJSON_IsString(input)) {
        *texts = malloc(sizeof **texts);
        if (!*texts)
            return http_error(r, 500, "out_of_memory", "out of memory"), -1;
        (*texts)[(*n)++] = input->valuestring;
    } else if (cJSON_IsArray(input)) {
        int count = cJSON_GetArraySize(input);
        if (count == 0 || count > EMBEDDINGS_MAX_INPUTS)
            return http_error(r, 400, "invalid_request", "'input' must hold 1..%d items", EMBEDDINGS_MAX_INPUTS), -1;
        *texts = malloc((size_t)count * sizeof **texts);
        if (!*texts)
            return http_error(r, 500, "out_of_memory", "out of memory"), -1;
        const cJSON *item;
        cJSON_ArrayForEach(item, input)
        {
            if (cJSON_IsNumber(item) || cJSON_IsArray(item))
                return http_error(r, 400, "invalid_request", token_ids), -1;
            if (!cJSON_IsString(item))
                return http_error(r, 400, "invalid_request", "'input' items must be strings"), -1;
            (*texts)[(*n)++] = item->valuestring;
        }
    } else {
        return http_error(r, 400, "invalid_request", "'input' must be a string or an array of strings"), -1;
    }
    for (size_t i = 0; i < *n; i++)
        if (!(*texts)[i][0])
            return http_error(r, 400, "invalid_request", "'input' item %zu is empty", i), -1;
    return 0;
}

void route_embeddings(rg_request *r)
{
    rg_embedder *em = r->server->semantic.embedder;
    if (!em) {
        http_error(r, 404, "not_found", "no embedding model is loaded (start ragd serve with --embed-model)");
        return;
    }
    cJSON *body = http_body_json(r);
    if (!body)
        return;
    const char **texts = NULL;
    size_t n = 0;
    float *vecs = NULL;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(body, "model");
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(body, "encoding_format");
    const cJSON *itype = cJSON_GetObjectItemCaseSensitive(body, "input_type");
    const cJSON *trunc = cJSON_GetObjectItemCaseSensitive(body, "truncate");
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(body, "dimensions");
    const char *input_type = NULL;
    int base64 = 0;
    rg_trunc_side side = RG_TRUNC_END;
    int no_truncation = 0;

    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model)) {
            http_error(r, 400, "invalid_request", "'model' must be a string");
            goto out;
        }
        if (!model_matches(model->valuestring, embedder_model_id(em), &input_type)) {
            http_error(r, 404, "not_found", "model '%s' is not served here (GET /v1/models lists %s)",
                       model->valuestring, embedder_model_id(em));
            goto out;
        }
    }
    if (format && !cJSON_IsNull(format)) {
        if (cJSON_IsString(format) && strcmp(format->valuestring, "base64") == 0)
            base64 = 1;
        else if (!cJSON_IsString(format) || strcmp(format->valuestring, "float") != 0) {
            http_error(r, 400, "invalid_request", "'encoding_format' must be \"float\" or \"base64\"");
            goto out;
        }
    }
    if (itype && !cJSON_IsNull(itype)) {
        if (!cJSON_IsString(itype) ||
            (strcmp(itype->valuestring, "query") != 0 && strcmp(itype->valuestring, "passage") != 0)) {
            http_error(r, 400, "invalid_request", "'input_type' must be \"query\" or \"passage\"");
            goto out;
        }
        input_type = itype->valuestring;
    }
    /* all-MiniLM-L6-v2 embeds queries and passages alike (no prefixes);
     * input_type is accepted for NIM clients and has no effect on it. */
    (void)input_type;
    if (trunc && !cJSON_IsNull(trunc)) {
        const char *t = cJSON_IsString(trunc) ? trunc->valuestring : "";
        if (strcmp(t, "NONE") == 0)
            no_truncation = 1;
        else if (strcmp(t, "START") == 0)
            side = RG_TRUNC_START;
        else if (strcmp(t, "END") != 0) {
            http_error(r, 400, "invalid_request", "'truncate' must be \"NONE\", \"START\" or \"END\"");
            goto out;
        }
    }
    if (dims && !cJSON_IsNull(dims) && (!cJSON_IsNumber(dims) || dims->valuedouble != (double)embedder_dim(em))) {
        http_error(r, 400, "invalid_request", "this model produces %zu dimensions only", embedder_dim(em));
        goto out;
    }
    if (collect_inputs(r, cJSON_GetObjectItemCaseSensitive(body, "input"), &texts, &n))
        goto out;
    if (no_truncation) {
        /* One over-long input fails the whole request, as NIMs do. */
        size_t max = embedder_max_tokens(em);
        for (size_t i = 0; i < n; i++) {
            size_t tokens = tokenizer_count(embedder_tokenizer(em), texts[i], strlen(texts[i])) + 2;
            if (tokens > max) {
                http_error(r, 400, "invalid_request", "Input length %zu exceeds maximum allowed token size %zu",
                           tokens, max);
                goto out;
            }
        }
    }
    size_t dim = embedder_dim(em), tokens = 0;
    vecs = malloc(n * dim * sizeof *vecs);
    rg_err e;
    if (!vecs) {
        http_error(r, 500, "out_of_memory", "out of memory");
        goto out;
    }
    if (embedder_embed(em, texts, NULL, n, side, 1, vecs, &tokens, &e)) {
        http_fail(r, &e);
        goto out;
    }
    cJSON *data;
    cJSON *o = json_list(&data);
    for (size_t i = 0; i < n; i++) {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "object", "embedding");
        cJSON_AddNumberToObject(item, "index", (double)i);
        if (base64) {
            char *b = base64_floats(vecs + i * dim, dim);
            cJSON_AddStringToObject(item, "embedding", b ? b : "");
            free(b);
        } else {
            cJSON *arr = cJSON_AddArrayToObject(item, "embedding");
            for (size_t d = 0; d < dim; d++)
                cJSON_AddItemToArray(arr, cJSON_CreateNumber(vecs[i * dim + d]));
        }
        cJSON_AddItemToArray(data, item);
    }
    cJSON_AddStringToObject(o, "model", embedder_model_id(em));
    cJSON *usage = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", (double)tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", (double)tokens);
    http_json(r, 200, o);
out:
    free(vecs);
    free(texts);
    cJSON_Delete(body);
}
