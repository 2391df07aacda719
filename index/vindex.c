#include "index/vindex.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "index/dense.h"
#include "store/vectors.h"

#define VINDEX_SCAN_PAGE 1024

typedef struct vindex_entry {
    int64_t collection_id;
    rg_dense_index *index;
    int dirty;
} vindex_entry;

struct rg_vindex {
    rg_store *store;
    char dir[4096];
    char model[256];
    int dim;
    pthread_mutex_t mu; /* guards the table and each collection's load/sync */
    vindex_entry *entries;
    size_t n, cap;
};

static void index_path(const rg_vindex *v, int64_t cid, char *out, size_t size)
{
    snprintf(out, size, "%s/collection-%lld.faiss", v->dir, (long long)cid);
}

rg_status vindex_open(rg_store *s, const char *dir, const char *model, int dim, rg_vindex **out, rg_err *e)
{
    rg_status st = fs_mkdirs(dir, e);
    if (st)
        return st;
    rg_vindex *v = calloc(1, sizeof *v);
    if (!v)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    v->store = s;
    snprintf(v->dir, sizeof v->dir, "%s", dir);
    snprintf(v->model, sizeof v->model, "%s", model);
    v->dim = dim;
    pthread_mutex_init(&v->mu, NULL);
    *out = v;
    return RG_OK;
}

/* Adds the store's vectors with ids above the index's highest. Lock held. */
static rg_status catch_up(rg_vindex *v, vindex_entry *x, rg_err *e)
{
    int64_t *ids = malloc(VINDEX_SCAN_PAGE * sizeof *ids);
    float *vecs = malloc((size_t)VINDEX_SCAN_PAGE * (size_t)v->dim * sizeof *vecs);
    rg_status st = ids && vecs ? RG_OK : rg_error(e, RG_ERR_NOMEM, "out of memory");
    int64_t after = dense_index_max_id(x->index);
    size_t n = 0;
    do {
        if (!st)
            st = store_vectors_scan(v->store, x->collection_id, v->model, v->dim, after, VINDEX_SCAN_PAGE, ids, vecs,
                                    &n, e);
        if (!st && n) {
            st = dense_index_add(x->index, n, vecs, ids, e);
            after = ids[n - 1];
            x->dirty = 1;
        }
    } while (!st && n == VINDEX_SCAN_PAGE);
    free(ids);
    free(vecs);
    return st;
}

/* The collection's entry, loading or rebuilding its index. Lock held. */
static rg_status entry_get(rg_vindex *v, int64_t cid, vindex_entry **out, rg_err *e)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->entries[i].collection_id == cid) {
            *out = &v->entries[i];
            return RG_OK;
        }
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        vindex_entry *p = realloc(v->entries, cap * sizeof *p);
        if (!p)
            return rg_error(e, RG_ERR_NOMEM, "out of memory");
        v->entries = p;
        v->cap = cap;
    }
    vindex_entry x = {.collection_id = cid};
    char path[4300];
    index_path(v, cid, path, sizeof path);
    rg_err le;
    rg_status st = dense_index_load(path, v->dim, DENSE_FLAT, &x.index, &le);
    if (st) {
        if (st != RG_ERR_NOT_FOUND)
            LOG_WARN("rebuilding the vector index of collection %lld: %s", (long long)cid, le.msg);
        st = dense_index_create(v->dim, DENSE_FLAT, &x.index, e);
        x.dirty = 1;
    }
    if (!st)
        st = catch_up(v, &x, e);
    if (st) {
        dense_index_free(x.index);
        return st;
    }
    v->entries[v->n] = x;
    *out = &v->entries[v->n++];
    return RG_OK;
}

rg_status vindex_sync(rg_vindex *v, int64_t collection_id, rg_err *e)
{
    pthread_mutex_lock(&v->mu);
    vindex_entry *x;
    rg_status st = entry_get(v, collection_id, &x, e);
    if (!st)
        st = catch_up(v, x, e);
    pthread_mutex_unlock(&v->mu);
    return st;
}

rg_status vindex_remove(rg_vindex *v, int64_t collection_id, size_t n, const int64_t *ids, rg_err *e)
{
    pthread_mutex_lock(&v->mu);
    vindex_entry *x;
    size_t removed = 0;
    rg_status st = entry_get(v, collection_id, &x, e);
    if (!st)
        st = dense_index_remove(x->index, n, ids, &removed, e);
    if (!st && removed)
        x->dirty = 1;
    pthread_mutex_unlock(&v->mu);
    return st;
}

void vindex_drop(rg_vindex *v, int64_t collection_id)
{
    pthread_mutex_lock(&v->mu);
    for (size_t i = 0; i < v->n; i++)
        if (v->entries[i].collection_id == collection_id) {
            dense_index_free(v->entries[i].index);
            v->entries[i] = v->entries[--v->n];
            break;
        }
    char path[4300];
    index_path(v, collection_id, path, sizeof path);
    unlink(path);
    pthread_mutex_unlock(&v->mu);
}

typedef struct scored {
    int64_t id;
    float score;
} scored;

static int by_score(const void *a, const void *b)
{
    float x = ((const scored *)a)->score, y = ((const scored *)b)->score;
    if (x != y)
        return x < y ? 1 : -1;
    int64_t i = ((const scored *)a)->id, j = ((const scored *)b)->id;
    return (i > j) - (i < j);
}

rg_status vindex_search(rg_vindex *v, int64_t collection_id, const float *query, size_t k, int64_t *ids,
                        float *scores, size_t *n, rg_err *e)
{
    *n = 0;
    int64_t *cids = NULL;
    size_t nc = 0;
    rg_status st = RG_OK;
    if (collection_id > 0) {
        cids = malloc(sizeof *cids);
        if (cids)
            cids[nc++] = collection_id;
    } else {
        rg_collection *cs = NULL;
        st = store_collection_list(v->store, &cs, &nc, e);
        cids = st ? NULL : malloc((nc ? nc : 1) * sizeof *cids);
        for (size_t i = 0; cids && i < nc; i++)
            cids[i] = cs[i].id;
        store_collections_free(cs, nc);
    }
    if (!st && !cids)
        st = rg_error(e, RG_ERR_NOMEM, "out of memory");
    /* Search each collection for k and keep the best k overall. */
    scored *all = st ? NULL : malloc((nc * k + 1) * sizeof *all);
    int64_t *tid = st ? NULL : malloc((k + 1) * sizeof *tid);
    float *tsc = st ? NULL : malloc((k + 1) * sizeof *tsc);
    if (!st && (!all || !tid || !tsc))
        st = rg_error(e, RG_ERR_NOMEM, "out of memory");
    size_t total = 0;
    for (size_t c = 0; c < nc && !st; c++) {
        pthread_mutex_lock(&v->mu);
        vindex_entry *x;
        st = entry_get(v, cids[c], &x, e);
        /* Vectors another process (ragd ingest) stored since: one indexed
         * query on the store when there are none. */
        if (!st)
            st = catch_up(v, x, e);
        size_t got = 0;
        if (!st)
            st = dense_index_search(x->index, query, k, tid, tsc, &got, e);
        pthread_mutex_unlock(&v->mu);
        for (size_t i = 0; i < got; i++)
            all[total++] = (scored){tid[i], tsc[i]};
    }
    if (!st) {
        qsort(all, total, sizeof *all, by_score);
        *n = total < k ? total : k;
        for (size_t i = 0; i < *n; i++) {
            ids[i] = all[i].id;
            scores[i] = all[i].score;
        }
    }
    free(cids);
    free(all);
    free(tid);
    free(tsc);
    return st;
}

rg_status vindex_save_dirty(rg_vindex *v, rg_err *e)
{
    rg_status st = RG_OK;
    pthread_mutex_lock(&v->mu);
    for (size_t i = 0; i < v->n && !st; i++) {
        if (!v->entries[i].dirty)
            continue;
        char path[4300];
        index_path(v, v->entries[i].collection_id, path, sizeof path);
        st = dense_index_save(v->entries[i].index, path, e);
        if (!st)
            v->entries[i].dirty = 0;
    }
    pthread_mutex_unlock(&v->mu);
    return st;
}

void vindex_close(rg_vindex *v)
{
    if (!v)
        return;
    rg_err e;
    if (vindex_save_dirty(v, &e) != RG_OK)
        LOG_WARN("saving vector indexes: %s (they will be rebuilt from the store)", e.msg);
    for (size_t i = 0; i < v->n; i++)
        dense_index_free(v->entries[i].index);
    free(v->entries);
    pthread_mutex_destroy(&v->mu);
    free(v);
}
