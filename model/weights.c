/* weights.c - one safetensors file or a sharded set (see weights.h). */
#include "model/weights.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"

typedef struct map_entry {
    const char *name; /* into the parsed index */
    size_t shard;
} map_entry;

struct rg_weights {
    char dir[3072];
    rg_safetensors **shards;
    size_t n_shards;
    cJSON *index;     /* NULL for a single file; owns the names below */
    map_entry *map;   /* sorted by name */
    size_t n_map;
};

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const map_entry *)a)->name, ((const map_entry *)b)->name);
}

static rg_status open_one(rg_weights *w, const char *file, rg_err *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", w->dir, file);
    rg_safetensors **grown = realloc(w->shards, (w->n_shards + 1) * sizeof *grown);
    if (!grown)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    w->shards = grown;
    rg_status st = safetensors_open(path, &w->shards[w->n_shards], e);
    if (st == RG_OK)
        w->n_shards++;
    return st;
}

static int plain_name(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < 256 && s[0] != '.' && !strchr(s, '/') && !strchr(s, '\\');
}

static rg_status open_index(rg_weights *w, const char *path, rg_err *e)
{
    rg_buf b;
    rg_buf_init(&b, 0);
    rg_status st = fs_read_file(path, WEIGHTS_MAX_INDEX, &b, e);
    if (st != RG_OK) {
        rg_buf_free(&b);
        return st;
    }
    w->index = cJSON_ParseWithLength(b.data ? b.data : "", b.len);
    rg_buf_free(&b);
    const cJSON *map = w->index ? cJSON_GetObjectItemCaseSensitive(w->index, "weight_map") : NULL;
    if (!cJSON_IsObject(map))
        return rg_error(e, RG_ERR_CORRUPT, "%s: not JSON with a \"weight_map\" object", path);
    size_t n = (size_t)cJSON_GetArraySize(map);
    if (n == 0)
        return rg_error(e, RG_ERR_CORRUPT, "%s: \"weight_map\" is empty", path);
    w->map = calloc(n, sizeof *w->map);
    if (!w->map)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    /* Distinct shard names in first-seen order; their index is the shard. */
    const char *names[WEIGHTS_MAX_SHARDS];
    size_t n_names = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, map)
    {
        if (!cJSON_IsString(it) || !it->string || !plain_name(it->valuestring))
            return rg_error(e, RG_ERR_CORRUPT, "%s: the file of tensor '%.200s' must be a plain file name", path,
                            it->string ? it->string : "");
        size_t s = 0;
        while (s < n_names && strcmp(names[s], it->valuestring) != 0)
            s++;
        if (s == n_names) {
            if (n_names == WEIGHTS_MAX_SHARDS)
                return rg_error(e, RG_ERR_CORRUPT, "%s: more than %d weight files", path, WEIGHTS_MAX_SHARDS);
            names[n_names++] = it->valuestring;
        }
        w->map[w->n_map].name = it->string;
        w->map[w->n_map].shard = s;
        w->n_map++;
    }
    qsort(w->map, w->n_map, sizeof *w->map, entry_cmp);
    for (size_t i = 1; i < w->n_map; i++)
        if (strcmp(w->map[i - 1].name, w->map[i].name) == 0)
            return rg_error(e, RG_ERR_CORRUPT, "%s: tensor '%.200s' is listed twice", path, w->map[i].name);
    for (size_t s = 0; s < n_names; s++)
        if ((st = open_one(w, names[s], e)) != RG_OK)
            return st;
    return RG_OK;
}

rg_status weights_open(const char *dir, rg_weights **out, rg_err *e)
{
    *out = NULL;
    if (!dir || strlen(dir) >= sizeof((rg_weights *)0)->dir)
        return rg_error(e, RG_ERR_INVALID, "weights: invalid model directory");
    rg_weights *w = calloc(1, sizeof *w);
    if (!w)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    char path[4096];
    rg_status st;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (fs_is_file(path)) {
        st = open_one(w, "model.safetensors", e);
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        if (fs_is_file(path))
            st = open_index(w, path, e);
        else
            st = rg_error(e, RG_ERR_NOT_FOUND, "%s: no model.safetensors or model.safetensors.index.json", dir);
    }
    if (st != RG_OK) {
        weights_close(w);
        return st;
    }
    *out = w;
    return RG_OK;
}

void weights_close(rg_weights *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_shards; i++)
        safetensors_close(w->shards[i]);
    free(w->shards);
    free(w->map);
    cJSON_Delete(w->index);
    free(w);
}

const rg_st_tensor *weights_find(const rg_weights *w, const char *name)
{
    if (!w->index)
        return w->n_shards ? safetensors_find(w->shards[0], name) : NULL;
    map_entry key = {.name = name};
    const map_entry *m = bsearch(&key, w->map, w->n_map, sizeof *w->map, entry_cmp);
    return m ? safetensors_find(w->shards[m->shard], name) : NULL;
}

rg_status weights_expect(const rg_weights *w, const char *name, int rank, const size_t *shape,
                         const rg_st_tensor **out, rg_err *e)
{
    if (!w->index)
        return safetensors_expect(w->shards[0], name, rank, shape, out, e);
    map_entry key = {.name = name};
    const map_entry *m = bsearch(&key, w->map, w->n_map, sizeof *w->map, entry_cmp);
    if (!m)
        return rg_error(e, RG_ERR_NOT_FOUND, "%s/model.safetensors.index.json: no tensor '%.200s'", w->dir, name);
    return safetensors_expect(w->shards[m->shard], name, rank, shape, out, e);
}

size_t weights_shard_count(const rg_weights *w) { return w->n_shards; }
