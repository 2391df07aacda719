/* vindex.c - the collections' dense indexes, loaded on first use and kept
 * level with the store's vectors (see vindex.h). */
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
    rg_index_settings settings; /* the collection's, read from the store at load */
    int dirty;
    /* It holds vectors of deleted chunks that it cannot drop (an HNSW graph
     * cannot remove nodes): rebuilt from the store before its next use. */
    int stale;
    /* The store's newest vector id (any collection) when a search last
     * caught this index up: while it has not grown, nothing new can be
     * there for this collection, and searches skip the catch-up scan, whose
     * join walks every newer vector of every other collection. */
    int64_t searched_max;
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

/* An empty index of the kind the settings ask for. */
static rg_status index_create(const rg_vindex *v, const rg_index_settings *x, rg_dense_index **out, rg_err *e)
{
    if (strcmp(x->type, STORE_INDEX_HNSW) == 0)
        return dense_index_create_hnsw(v->dim, x->hnsw_m, x->ef_construction, x->ef_search, out, e);
    return dense_index_create(v->dim, DENSE_FLAT, out, e);
}

/* Replaces the entry's index with one built from all the store's vectors
 * of its collection. Lock held. */
static rg_status rebuild(rg_vindex *v, vindex_entry *x, rg_err *e)
{
    rg_dense_index *fresh = NULL;
    rg_status st = index_create(v, &x->settings, &fresh, e);
    if (st)
        return st;
    rg_dense_index *old = x->index;
    x->index = fresh;
    st = catch_up(v, x, e);
    if (st) {
        x->index = old;
        dense_index_free(fresh);
        return st;
    }
    dense_index_free(old);
    x->dirty = 1;
    x->stale = 0;
    return RG_OK;
}

/* Loads the collection's index file, or builds the index when the file is
 * missing, unreadable or of another kind, and brings it level with the
 * store. A file whose vector count differs from the store's after catching
 * up (vectors stored for old chunks after it was saved, or deletions it
 * never saw) is rebuilt too: the store is the truth. */
static rg_status entry_load(rg_vindex *v, vindex_entry *x, rg_err *e)
{
    rg_status st = store_collection_index(v->store, x->collection_id, &x->settings, e);
    if (st)
        return st;
    rg_dense_kind kind = strcmp(x->settings.type, STORE_INDEX_HNSW) == 0 ? DENSE_HNSW : DENSE_FLAT;
    char path[4300];
    index_path(v, x->collection_id, path, sizeof path);
    rg_err le;
    st = dense_index_load(path, v->dim, kind, &x->index, &le);
    if (!st)
        st = dense_index_set_ef_search(x->index, x->settings.ef_search, e);
    if (st) {
        if (st != RG_ERR_NOT_FOUND)
            LOG_WARN("rebuilding the vector index of collection %lld: %s", (long long)x->collection_id, le.msg);
        dense_index_free(x->index);
        x->index = NULL;
        if ((st = index_create(v, &x->settings, &x->index, e)))
            return st;
        x->dirty = 1;
    }
    st = catch_up(v, x, e);
    int64_t stored = 0;
    if (!st)
        st = store_vectors_count(v->store, x->collection_id, v->model, &stored, e);
    if (!st && (int64_t)dense_index_count(x->index) != stored) {
        LOG_INFO("rebuilding the vector index of collection %lld: it holds %zu vectors, the store %lld",
                 (long long)x->collection_id, dense_index_count(x->index), (long long)stored);
        st = rebuild(v, x, e);
    }
    return st;
}

/* The collection's entry, loading, building or rebuilding its index.
 * *built (may be NULL) is set when the index was just made level with the
 * store from scratch, so it already holds every stored vector. Lock held. */
static rg_status entry_get(rg_vindex *v, int64_t cid, vindex_entry **out, int *built, rg_err *e)
{
    if (built)
        *built = 0;
    for (size_t i = 0; i < v->n; i++)
        if (v->entries[i].collection_id == cid) {
            vindex_entry *x = &v->entries[i];
            if (x->stale) {
                rg_status st = rebuild(v, x, e);
                if (st)
                    return st;
                if (built)
                    *built = 1;
            }
            *out = x;
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
    rg_status st = entry_load(v, &x, e);
    if (st) {
        dense_index_free(x.index);
        return st;
    }
    v->entries[v->n] = x;
    *out = &v->entries[v->n++];
    if (built)
        *built = 1;
    return RG_OK;
}

rg_status vindex_sync(rg_vindex *v, int64_t collection_id, rg_err *e)
{
    pthread_mutex_lock(&v->mu);
    vindex_entry *x;
    rg_status st = entry_get(v, collection_id, &x, NULL, e);
    if (!st)
        st = catch_up(v, x, e);
    pthread_mutex_unlock(&v->mu);
    return st;
}

rg_status vindex_add(rg_vindex *v, int64_t collection_id, size_t n, const int64_t *ids, const float *vectors,
                     rg_err *e)
{
    pthread_mutex_lock(&v->mu);
    vindex_entry *x;
    int built = 0;
    rg_status st = entry_get(v, collection_id, &x, &built, e);
    if (!st && !built && n) {
        /* Ids above the index's highest are the store's newest vectors,
         * which catch_up adds in order; ids below it are old chunks that had
         * no vector for this model until now, which catching up never looks
         * back for: add those here. */
        int64_t top = dense_index_max_id(x->index);
        int64_t *old_ids = malloc(n * sizeof *old_ids);
        float *old_vecs = malloc(n * (size_t)v->dim * sizeof *old_vecs);
        size_t m = 0;
        if (!old_ids || !old_vecs)
            st = rg_error(e, RG_ERR_NOMEM, "out of memory");
        for (size_t i = 0; !st && i < n; i++)
            if (ids[i] <= top) {
                old_ids[m] = ids[i];
                memcpy(old_vecs + m * (size_t)v->dim, vectors + i * (size_t)v->dim, (size_t)v->dim * sizeof(float));
                m++;
            }
        if (!st && m) {
            st = dense_index_add(x->index, m, old_vecs, old_ids, e);
            x->dirty = 1;
        }
        free(old_ids);
        free(old_vecs);
        if (!st)
            st = catch_up(v, x, e);
    }
    pthread_mutex_unlock(&v->mu);
    return st;
}

rg_status vindex_remove(rg_vindex *v, int64_t collection_id, size_t n, const int64_t *ids, rg_err *e)
{
    pthread_mutex_lock(&v->mu);
    vindex_entry *x;
    size_t removed = 0;
    rg_status st = entry_get(v, collection_id, &x, NULL, e);
    if (!st && dense_index_kind(x->index) == DENSE_HNSW) {
        /* The graph keeps the nodes; results are joined with the store, so
         * the vectors are harmless until the rebuild before the next use. */
        if (n)
            x->stale = x->dirty = 1;
    } else if (!st) {
        st = dense_index_remove(x->index, n, ids, &removed, e);
    }
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
    /* Vectors another process (ragd ingest) stored since: a primary-key
     * lookup of the store's newest vector id, once per search, says whether
     * any vector is newer than at an index's last search, and only then is
     * that collection scanned. (This process's own vectors reach the index
     * through vindex_add.) */
    int64_t newest = 0;
    if (!st)
        st = store_vectors_max_id(v->store, v->model, &newest, e);
    size_t total = 0;
    for (size_t c = 0; c < nc && !st; c++) {
        pthread_mutex_lock(&v->mu);
        vindex_entry *x;
        st = entry_get(v, cids[c], &x, NULL, e);
        if (st == RG_ERR_NOT_FOUND && collection_id == 0) {
            /* Deleted since it was listed: nothing to search there. */
            pthread_mutex_unlock(&v->mu);
            rg_err_clear(e);
            st = RG_OK;
            continue;
        }
        if (!st && newest > x->searched_max) {
            st = catch_up(v, x, e);
            if (!st)
                x->searched_max = newest;
        }
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
        if (v->entries[i].stale && (st = rebuild(v, &v->entries[i], e)))
            break;
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
