/* The FAISS C API that the build compiles from the Debian source package
 * links and works: an inner-product IDMap index finds the vectors it was
 * given, under their own ids, and survives a write/read round trip.
 * (The dense index of index/ builds on exactly these calls.) */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#include "check.h"

#define DIM 16
#define N 200

int main(void)
{
    float *xs = malloc(sizeof(float) * DIM * N);
    idx_t ids[N];
    srand(7);
    for (int i = 0; i < N; i++) {
        ids[i] = 1000 + 3 * i;
        for (int j = 0; j < DIM; j++)
            xs[i * DIM + j] = (float)rand() / RAND_MAX - 0.5f;
    }
    FaissIndex *index = NULL;
    CHECK(faiss_index_factory(&index, DIM, "IDMap2,Flat", METRIC_INNER_PRODUCT) == 0);
    CHECK(index != NULL);
    CHECK(faiss_Index_add_with_ids(index, N, xs, ids) == 0);
    CHECK(faiss_Index_ntotal(index) == N);

    /* Each stored vector's best inner-product match, scaled up, is itself. */
    float q[DIM], dist[1];
    idx_t label[1];
    int found = 0;
    for (int i = 0; i < N; i += 17) {
        for (int j = 0; j < DIM; j++)
            q[j] = xs[i * DIM + j] * 100.0f;
        CHECK(faiss_Index_search(index, 1, q, 1, dist, label) == 0);
        found += label[0] == ids[i];
    }
    CHECK_MSG(found >= 10, "only %d of 12 vectors found themselves", found);

    char path[] = "/tmp/ragd-faiss-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK(faiss_write_index_fname(index, path) == 0);
    FaissIndex *back = NULL;
    CHECK(faiss_read_index_fname(path, 0, &back) == 0);
    CHECK(back && faiss_Index_ntotal(back) == N);
    for (int j = 0; j < DIM; j++)
        q[j] = xs[5 * DIM + j] * 100.0f;
    CHECK(back && faiss_Index_search(back, 1, q, 1, dist, label) == 0 && label[0] == ids[5]);
    unlink(path);
    faiss_Index_free(back);
    faiss_Index_free(index);
    free(xs);
    return check_finish("test_faiss_capi");
}
