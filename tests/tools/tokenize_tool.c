/* tokenize_tool - runs ragd's WordPiece tokenizer for the reference tests
 * (tests/integration/test_tokenizer_reference.py).
 *
 *   tokenize_tool MODEL_DIR            tokenizer.json (else vocab.txt)
 *   tokenize_tool --vocab MODEL_DIR    vocab.txt + tokenizer_config.json
 *
 * Reads one JSON object per line on stdin:
 *   {"text_hex": "...", "pair_hex": "...", "max_len": 0, "side": "end"}
 * (texts as hex of their bytes, so any byte string can be sent; pair_hex,
 * max_len and side are optional) and writes one line per input:
 *   {"ids": [...], "type_ids": [...], "offsets": [[s, e], ...], "count": n}
 * with byte offsets and count = tokenizer_count of the first text, or
 *   {"error": "..."}. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer.h"

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes hex into a malloc'd buffer; NULL on malformed hex. */
static char *unhex(const char *h, size_t *len)
{
    size_t n = strlen(h);
    if (n % 2)
        return NULL;
    char *out = malloc(n / 2 + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n / 2; i++) {
        int a = hexval(h[2 * i]), b = hexval(h[2 * i + 1]);
        if (a < 0 || b < 0) {
            free(out);
            return NULL;
        }
        out[i] = (char)(a * 16 + b);
    }
    *len = n / 2;
    return out;
}

static void print_error(const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    char *s = cJSON_PrintUnformatted(o);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
}

int main(int argc, char **argv)
{
    int use_vocab = 0;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--vocab") == 0)
            use_vocab = 1;
        else
            dir = argv[i];
    }
    if (!dir) {
        fprintf(stderr, "usage: tokenize_tool [--vocab] MODEL_DIR < requests.jsonl\n");
        return 2;
    }
    rg_err err;
    rg_tokenizer *tok = NULL;
    rg_status st;
    if (use_vocab) {
        char v[4096], c[4096];
        snprintf(v, sizeof v, "%s/vocab.txt", dir);
        snprintf(c, sizeof c, "%s/tokenizer_config.json", dir);
        st = tokenizer_load_vocab(v, c, &tok, &err);
    } else {
        st = tokenizer_load(dir, &tok, &err);
    }
    if (st) {
        fprintf(stderr, "tokenize_tool: %s\n", err.msg);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, stdin)) > 0) {
        cJSON *req = cJSON_Parse(line);
        const cJSON *th = cJSON_GetObjectItemCaseSensitive(req, "text_hex");
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(req, "pair_hex");
        const cJSON *ml = cJSON_GetObjectItemCaseSensitive(req, "max_len");
        const cJSON *sd = cJSON_GetObjectItemCaseSensitive(req, "side");
        size_t alen = 0, blen = 0;
        char *a = cJSON_IsString(th) ? unhex(th->valuestring, &alen) : NULL;
        char *b = cJSON_IsString(ph) ? unhex(ph->valuestring, &blen) : NULL;
        if (!a || (ph && !b)) {
            print_error("bad request");
        } else {
            size_t max_len = cJSON_IsNumber(ml) && ml->valuedouble > 0 ? (size_t)ml->valuedouble : 0;
            rg_trunc_side side = cJSON_IsString(sd) && strcmp(sd->valuestring, "start") == 0 ? RG_TRUNC_START
                                                                                            : RG_TRUNC_END;
            rg_encoding enc;
            memset(&enc, 0, sizeof enc);
            st = b ? tokenizer_encode_pair(tok, a, alen, b, blen, max_len, side, &enc, &err)
                   : tokenizer_encode_single(tok, a, alen, max_len, side, &enc, &err);
            if (st) {
                print_error(err.msg);
            } else {
                printf("{\"ids\":[");
                for (size_t i = 0; i < enc.n; i++)
                    printf("%s%d", i ? "," : "", (int)enc.ids[i]);
                printf("],\"type_ids\":[");
                for (size_t i = 0; i < enc.n; i++)
                    printf("%s%d", i ? "," : "", (int)enc.type_ids[i]);
                printf("],\"seq\":[");
                for (size_t i = 0; i < enc.n; i++)
                    printf("%s%d", i ? "," : "", (int)enc.seq[i]);
                printf("],\"offsets\":[");
                for (size_t i = 0; i < enc.n; i++)
                    printf("%s[%zu,%zu]", i ? "," : "", enc.start[i], enc.end[i]);
                printf("],\"n_untruncated\":%zu,\"count\":%zu}\n", enc.n_untruncated,
                       tokenizer_count(tok, a, alen));
            }
            encoding_free(&enc);
        }
        fflush(stdout);
        free(a);
        free(b);
        cJSON_Delete(req);
    }
    free(line);
    tokenizer_free(tok);
    return 0;
}
