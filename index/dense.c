#define _GNU_SOURCE
#include "index/dense.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <faiss/c_api/utils/distances_c.h>

/* v2 adds the FAISS bytes' length and checksum: FAISS reads what it is
 * given without checking it (a flipped count or neighbour id is a huge
 * allocation or a read out of bounds later, in a search), so a file that
 * is not exactly what ragd wrote never reaches it. v1 files are refused
 * as corrupt, so they are rebuilt from the store once. */
#define DENSE_MAGIC "RAGDVEC2"
#define DENSE_MAX_DIM 65536

struct rg_dense_index {
    pthread_rwlock_t lock;
    FaissIndex *faiss;
    int dim;
    rg_dense_kind kind;
    int64_t max_id;
};

/* The header before the FAISS bytes in an index file. */
typedef struct dense_header {
    char magic[8];
    int32_t dim;
    int32_t kind;
    int64_t max_id;
    uint64_t payload_bytes; /* the FAISS bytes after the header */
    uint64_t payload_sum;   /* their checksum (sum_rest) */
} dense_header;
_Static_assert(sizeof(dense_header) == 40, "bench/bench_index_load.c skips a 40-byte header");

typedef struct payload_sum {
    uint64_t lane[4];
    uint64_t bytes;
    unsigned char tail[32];
    size_t n_tail;
} payload_sum;

static uint64_t mix(uint64_t h, uint64_t w)
{
    h ^= w * 0x9E3779B97F4A7C15ull;
    h = (h << 31) | (h >> 33);
    return h * 0xC2B2AE3D27D4EB4Full;
}

/* A checksum of the payload, for detecting corruption (not tampering):
 * four independent lanes over 32-byte blocks run at memory speed, where a
 * byte-wise hash would make a large index's load noticeably slower. */
static void sum_init(payload_sum *s)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < 4; i++)
        s->lane[i] = 0x243F6A8885A308D3ull * (uint64_t)(i + 1);
}

static void sum_block(payload_sum *s, const unsigned char *p)
{
    for (int i = 0; i < 4; i++) {
        uint64_t w;
        memcpy(&w, p + 8 * i, 8);
        s->lane[i] = mix(s->lane[i], w);
    }
}

static void sum_update(payload_sum *s, const void *data, size_t n)
{
    const unsigned char *p = data;
    s->bytes += n;
    while (n && s->n_tail) {
        s->tail[s->n_tail++] = *p++;
        n--;
        if (s->n_tail == 32) {
            sum_block(s, s->tail);
            s->n_tail = 0;
        }
    }
    for (; n >= 32; p += 32, n -= 32)
        sum_block(s, p);
    memcpy(s->tail, p, n);
    s->n_tail += n;
}

static uint64_t sum_final(payload_sum *s)
{
    uint64_t h = s->bytes;
    for (size_t i = 0; i < s->n_tail; i++)
        h = mix(h, s->tail[i]);
    for (int i = 0; i < 4; i++)
        h = mix(h, s->lane[i]);
    return h;
}

/* Checksums f from its current position to the end. */
static rg_status sum_rest(FILE *f, uint64_t *bytes, uint64_t *sum)
{
    static const size_t CHUNK = 1 << 20;
    unsigned char *buf = malloc(CHUNK);
    if (!buf)
        return RG_ERR_NOMEM;
    payload_sum s;
    sum_init(&s);
    size_t n;
    while ((n = fread(buf, 1, CHUNK, f)) > 0)
        sum_update(&s, buf, n);
    int bad = ferror(f);
    free(buf);
    if (bad)
        return RG_ERR_IO;
    *bytes = s.bytes;
    *sum = sum_final(&s);
    return RG_OK;
}

static rg_status faiss_fail(rg_err *e, rg_status st, const char *what)
{
    const char *msg = faiss_get_last_error();
    return rg_error(e, st, "faiss: %s: %s", what, msg && *msg ? msg : "failed");
}

rg_status dense_kind_parse(const char *name, rg_dense_kind *kind, rg_err *e)
{
    if (strcmp(name, "flat") == 0)
        *kind = DENSE_FLAT;
    else if (strcmp(name, "hnsw") == 0)
        *kind = DENSE_HNSW;
    else
        return rg_error(e, RG_ERR_INVALID, "unknown index kind '%s' (use flat or hnsw)", name);
    return RG_OK;
}

const char *dense_kind_name(rg_dense_kind kind)
{
    return kind == DENSE_HNSW ? "hnsw" : "flat";
}

/* Flat search of fewer queries than FAISS's distance_compute_blas_threshold
 * (20) runs FAISS's own inner-product loops, which Debian's libfaiss.a
 * compiles for baseline x86-64: scalar code (fvec_inner_product_ref in a
 * profile). A dense query is one query, so every search took that path.
 * From one query up they now go through BLAS instead (OpenBLAS, whose
 * kernels are chosen for the CPU at run time): 2-3x faster, see
 * docs/BENCHMARKS.md, "Single-query flat search". OpenBLAS runs that
 * product on the calling thread: its own threads, spinning beside the
 * server's model threads on a busy machine, made a 100K-vector search take
 * 0.5 s instead of 14 ms (measured); nothing else in ragd calls BLAS (the
 * models multiply with model/gemm_cpu). HNSW searches are not affected. */
static void faiss_tune(void)
{
    openblas_set_num_threads(1);
    faiss_set_distance_compute_blas_threshold(1);
}

static rg_status wrap(FaissIndex *faiss, int dim, rg_dense_kind kind, int64_t max_id, rg_dense_index **out,
                      rg_err *e)
{
    static pthread_once_t tuned = PTHREAD_ONCE_INIT;
    pthread_once(&tuned, faiss_tune);
    rg_dense_index *x = calloc(1, sizeof *x);
    if (!x) {
        faiss_Index_free(faiss);
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    }
    pthread_rwlock_init(&x->lock, NULL);
    x->faiss = faiss;
    x->dim = dim;
    x->kind = kind;
    x->max_id = max_id;
    *out = x;
    return RG_OK;
}

rg_status dense_index_create(int dim, rg_dense_kind kind, rg_dense_index **out, rg_err *e)
{
    if (dim <= 0 || dim > DENSE_MAX_DIM)
        return rg_error(e, RG_ERR_INVALID, "vector dimension %d out of range 1..%d", dim, DENSE_MAX_DIM);
    FaissIndex *faiss = NULL;
    const char *desc = kind == DENSE_HNSW ? "IDMap2,HNSW32,Flat" : "IDMap2,Flat";
    if (faiss_index_factory(&faiss, dim, desc, METRIC_INNER_PRODUCT) != 0)
        return faiss_fail(e, RG_ERR_INTERNAL, desc);
    return wrap(faiss, dim, kind, 0, out, e);
}

/* Sets one HNSW parameter through FAISS's ParameterSpace, which looks
 * through the IDMap2 wrapper to the HNSW index inside. */
static rg_status set_hnsw_param(FaissIndex *faiss, const char *name, int value, rg_err *e)
{
    FaissParameterSpace *ps = NULL;
    if (faiss_ParameterSpace_new(&ps) != 0)
        return faiss_fail(e, RG_ERR_NOMEM, "parameter space");
    int rc = faiss_ParameterSpace_set_index_parameter(ps, faiss, name, (double)value);
    faiss_ParameterSpace_free(ps);
    if (rc != 0)
        return faiss_fail(e, RG_ERR_INTERNAL, name);
    return RG_OK;
}

rg_status dense_index_create_hnsw(int dim, int m, int ef_construction, int ef_search, rg_dense_index **out,
                                  rg_err *e)
{
    if (dim <= 0 || dim > DENSE_MAX_DIM)
        return rg_error(e, RG_ERR_INVALID, "vector dimension %d out of range 1..%d", dim, DENSE_MAX_DIM);
    if (m < 4 || m > 128 || ef_construction < 1 || ef_search < 1)
        return rg_error(e, RG_ERR_INVALID, "HNSW parameters out of range (m %d, ef_construction %d, ef_search %d)", m,
                        ef_construction, ef_search);
    char desc[64];
    snprintf(desc, sizeof desc, "IDMap2,HNSW%d,Flat", m);
    FaissIndex *faiss = NULL;
    if (faiss_index_factory(&faiss, dim, desc, METRIC_INNER_PRODUCT) != 0)
        return faiss_fail(e, RG_ERR_INTERNAL, desc);
    rg_status st = set_hnsw_param(faiss, "efConstruction", ef_construction, e);
    if (!st)
        st = set_hnsw_param(faiss, "efSearch", ef_search, e);
    if (st) {
        faiss_Index_free(faiss);
        return st;
    }
    return wrap(faiss, dim, DENSE_HNSW, 0, out, e);
}

rg_status dense_index_set_ef_search(rg_dense_index *x, int ef_search, rg_err *e)
{
    if (x->kind != DENSE_HNSW)
        return RG_OK;
    if (ef_search < 1)
        return rg_error(e, RG_ERR_INVALID, "efSearch %d must be positive", ef_search);
    pthread_rwlock_wrlock(&x->lock);
    rg_status st = set_hnsw_param(x->faiss, "efSearch", ef_search, e);
    pthread_rwlock_unlock(&x->lock);
    return st;
}

rg_status dense_index_load(const char *path, int dim, rg_dense_kind kind, rg_dense_index **out, rg_err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return rg_error(e, errno == ENOENT ? RG_ERR_NOT_FOUND : RG_ERR_CORRUPT, "cannot open %s: %s", path,
                        strerror(errno));
    dense_header h;
    rg_status st = RG_OK;
    if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, DENSE_MAGIC, 8) != 0)
        st = rg_error(e, RG_ERR_CORRUPT, "%s is not a ragd vector index", path);
    else if (h.dim != dim || h.kind != (int32_t)kind || h.max_id < 0)
        st = rg_error(e, RG_ERR_CORRUPT, "%s holds a %s index of dimension %d, not %s/%d", path,
                      dense_kind_name((rg_dense_kind)h.kind), h.dim, dense_kind_name(kind), dim);
    uint64_t bytes = 0, sum = 0;
    if (!st && (st = sum_rest(f, &bytes, &sum)))
        rg_error(e, st, "reading %s: %s", path, strerror(errno));
    else if (!st && (bytes != h.payload_bytes || sum != h.payload_sum))
        st = rg_error(e, RG_ERR_CORRUPT, "%s is damaged (%llu bytes after the header, %llu written; checksum %s)",
                      path, (unsigned long long)bytes, (unsigned long long)h.payload_bytes,
                      sum == h.payload_sum ? "matches" : "differs");
    if (!st && fseek(f, (long)sizeof h, SEEK_SET) != 0)
        st = rg_error(e, RG_ERR_IO, "seeking in %s: %s", path, strerror(errno));
    FaissIndex *faiss = NULL;
    if (!st && faiss_read_index(f, 0, &faiss) != 0)
        st = faiss_fail(e, RG_ERR_CORRUPT, path);
    if (!st && faiss_Index_d(faiss) != dim) {
        st = rg_error(e, RG_ERR_CORRUPT, "%s: the FAISS index has dimension %d, not %d", path,
                      faiss_Index_d(faiss), dim);
        faiss_Index_free(faiss);
    }
    fclose(f);
    if (st)
        return st;
    return wrap(faiss, dim, kind, h.max_id, out, e);
}

rg_status dense_index_save(rg_dense_index *x, const char *path, rg_err *e)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return rg_error(e, RG_ERR_INVALID, "index path too long");
    FILE *f = fopen(tmp, "w+b");
    if (!f)
        return rg_error(e, RG_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    pthread_rwlock_rdlock(&x->lock);
    dense_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, DENSE_MAGIC, 8);
    h.dim = x->dim;
    h.kind = (int32_t)x->kind;
    h.max_id = x->max_id;
    rg_status st = RG_OK;
    if (fwrite(&h, sizeof h, 1, f) != 1)
        st = rg_error(e, RG_ERR_IO, "writing %s: %s", tmp, strerror(errno));
    else if (faiss_write_index(x->faiss, f) != 0)
        st = faiss_fail(e, RG_ERR_IO, tmp);
    pthread_rwlock_unlock(&x->lock);
    /* the header's length and checksum, from the bytes as written (read
     * back from the page cache: FAISS writes only to a FILE) */
    if (!st && (fflush(f) != 0 || fseek(f, (long)sizeof h, SEEK_SET) != 0))
        st = rg_error(e, RG_ERR_IO, "writing %s: %s", tmp, strerror(errno));
    if (!st && sum_rest(f, &h.payload_bytes, &h.payload_sum) != RG_OK)
        st = rg_error(e, RG_ERR_IO, "reading back %s: %s", tmp, strerror(errno));
    if (!st && (fseek(f, 0, SEEK_SET) != 0 || fwrite(&h, sizeof h, 1, f) != 1))
        st = rg_error(e, RG_ERR_IO, "writing %s: %s", tmp, strerror(errno));
    if (!st && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        st = rg_error(e, RG_ERR_IO, "flushing %s: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && !st)
        st = rg_error(e, RG_ERR_IO, "closing %s: %s", tmp, strerror(errno));
    if (!st && rename(tmp, path) != 0)
        st = rg_error(e, RG_ERR_IO, "renaming %s: %s", tmp, strerror(errno));
    if (st)
        unlink(tmp);
    return st;
}

void dense_index_free(rg_dense_index *x)
{
    if (!x)
        return;
    faiss_Index_free(x->faiss);
    pthread_rwlock_destroy(&x->lock);
    free(x);
}

rg_status dense_index_add(rg_dense_index *x, size_t n, const float *vectors, const int64_t *ids, rg_err *e)
{
    if (n == 0)
        return RG_OK;
    int64_t top = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] <= 0)
            return rg_error(e, RG_ERR_INVALID, "vector id %lld is not positive", (long long)ids[i]);
        if (ids[i] > top)
            top = ids[i];
    }
    pthread_rwlock_wrlock(&x->lock);
    rg_status st = RG_OK;
    if (faiss_Index_add_with_ids(x->faiss, (idx_t)n, vectors, (const idx_t *)ids) != 0)
        st = faiss_fail(e, RG_ERR_INTERNAL, "adding vectors");
    else if (top > x->max_id)
        x->max_id = top;
    pthread_rwlock_unlock(&x->lock);
    return st;
}

rg_status dense_index_remove(rg_dense_index *x, size_t n, const int64_t *ids, size_t *removed, rg_err *e)
{
    if (removed)
        *removed = 0;
    if (x->kind == DENSE_HNSW)
        return rg_error(e, RG_ERR_UNSUPPORTED, "an HNSW index cannot remove vectors; rebuild it");
    if (n == 0)
        return RG_OK;
    FaissIDSelectorBatch *sel = NULL;
    if (faiss_IDSelectorBatch_new(&sel, n, (const idx_t *)ids) != 0)
        return faiss_fail(e, RG_ERR_NOMEM, "selecting ids");
    size_t count = 0;
    pthread_rwlock_wrlock(&x->lock);
    int rc = faiss_Index_remove_ids(x->faiss, (const FaissIDSelector *)sel, &count);
    pthread_rwlock_unlock(&x->lock);
    faiss_IDSelector_free((FaissIDSelector *)sel);
    if (rc != 0)
        return faiss_fail(e, RG_ERR_INTERNAL, "removing vectors");
    if (removed)
        *removed = count;
    return RG_OK;
}

rg_status dense_index_search(rg_dense_index *x, const float *query, size_t k, int64_t *ids, float *scores,
                             size_t *n_out, rg_err *e)
{
    *n_out = 0;
    if (k == 0)
        return RG_OK;
    idx_t *labels = malloc(k * sizeof *labels);
    if (!labels)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    pthread_rwlock_rdlock(&x->lock);
    int rc = faiss_Index_search(x->faiss, 1, query, (idx_t)k, scores, labels);
    pthread_rwlock_unlock(&x->lock);
    if (rc != 0) {
        free(labels);
        return faiss_fail(e, RG_ERR_INTERNAL, "searching");
    }
    /* FAISS pads missing results with label -1. */
    size_t n = 0;
    for (size_t i = 0; i < k; i++) {
        if (labels[i] < 0)
            continue;
        ids[n] = labels[i];
        scores[n] = scores[i];
        n++;
    }
    free(labels);
    *n_out = n;
    return RG_OK;
}

size_t dense_index_count(rg_dense_index *x)
{
    pthread_rwlock_rdlock(&x->lock);
    size_t n = (size_t)faiss_Index_ntotal(x->faiss);
    pthread_rwlock_unlock(&x->lock);
    return n;
}

int dense_index_dim(const rg_dense_index *x)
{
    return x->dim;
}

rg_dense_kind dense_index_kind(const rg_dense_index *x)
{
    return x->kind;
}

int64_t dense_index_max_id(rg_dense_index *x)
{
    pthread_rwlock_rdlock(&x->lock);
    int64_t m = x->max_id;
    pthread_rwlock_unlock(&x->lock);
    return m;
}
