/* index/fusion: reciprocal rank fusion by hand-computed examples. */
#include <math.h>

#include "check.h"
#include "index/fusion.h"

int main(void)
{
    rg_err e = {0};
    rg_fused out[10];
    size_t n = 0;

    /* Chunk 7 is 2nd lexically and 1st densely: it wins. */
    int64_t lex[] = {5, 7, 9}, dense[] = {7, 3, 5};
    const int64_t *lists[] = {lex, dense};
    size_t lens[] = {3, 3};
    CHECK_OK(fusion_rrf(lists, lens, 2, 60.0, out, 10, &n, &e), e);
    CHECK(n == 4);
    CHECK(out[0].chunk_id == 7 && out[0].ranks[0] == 2 && out[0].ranks[1] == 1);
    CHECK(fabs(out[0].score - (1.0 / 62 + 1.0 / 61)) < 1e-12);
    CHECK(out[1].chunk_id == 5 && out[1].ranks[0] == 1 && out[1].ranks[1] == 3);
    /* 3 (dense rank 2) and 9 (lexical rank 3): 1/62 beats 1/63. */
    CHECK(out[2].chunk_id == 3 && out[2].ranks[0] == 0 && out[2].ranks[1] == 2);
    CHECK(out[3].chunk_id == 9 && out[3].ranks[1] == 0);
    for (size_t i = 1; i < n; i++)
        CHECK(out[i - 1].score >= out[i].score);

    /* Equal scores: better best rank first, then the lower id. */
    int64_t a[] = {4, 8}, b[] = {8, 4};
    const int64_t *ab[] = {a, b};
    size_t lab[] = {2, 2};
    CHECK_OK(fusion_rrf(ab, lab, 2, 60.0, out, 10, &n, &e), e);
    CHECK(n == 2 && out[0].chunk_id == 4 && out[1].chunk_id == 8);

    /* A duplicate within a list counts once, at its best rank. */
    int64_t dup[] = {1, 1, 2};
    const int64_t *d1[] = {dup};
    size_t ld[] = {3};
    CHECK_OK(fusion_rrf(d1, ld, 1, 60.0, out, 10, &n, &e), e);
    CHECK(n == 2 && out[0].chunk_id == 1 && out[0].ranks[0] == 1 && fabs(out[0].score - 1.0 / 61) < 1e-12);

    /* Truncation, empty input, bad arguments. */
    CHECK_OK(fusion_rrf(lists, lens, 2, 60.0, out, 2, &n, &e), e);
    CHECK(n == 2 && out[0].chunk_id == 7);
    size_t zero[] = {0, 0};
    CHECK_OK(fusion_rrf(lists, zero, 2, 60.0, out, 10, &n, &e), e);
    CHECK(n == 0);
    CHECK(fusion_rrf(lists, lens, 2, 0.0, out, 10, &n, &e) == RG_ERR_INVALID);
    CHECK(fusion_rrf(lists, lens, 5, 60.0, out, 10, &n, &e) == RG_ERR_INVALID);
    return check_finish("test_fusion");
}
