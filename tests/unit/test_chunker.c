/* test_chunker.c - token_count_approx and chunker_split. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/err.h"
#include "common/utf8.h"
#include "ingest/chunker.h"
#include "ingest/doctext.h"

static void add(rg_doctext *d, rg_block_kind kind, int level, const char *s)
{
    rg_err e;
    rg_status st = doctext_add_block(d, kind, level, 0, s, strlen(s), &e);
    CHECK_OK(st, e);
}

static int is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\t';
}

static size_t count_bytes(const char *text, size_t len, void *ctx)
{
    (void)text;
    (void)ctx;
    return len; /* not additive over parts: joining adds the separator */
}

/* The invariants every split must satisfy; returns the number of failures. */
static int check_chunks(const rg_doctext *d, const rg_chunk_opts *o, const rg_chunk_span *c, size_t n,
                        int single_words_fit)
{
    int fails = check_failures;
    rg_token_counter cnt = o->count ? o->count : token_count_approx;
    size_t ov_cap = o->overlap_tokens < o->target_tokens / 2 ? o->overlap_tokens : o->target_tokens / 2;
    for (size_t i = 0; i < n; i++) {
        CHECK_MSG(c[i].start < c[i].end && c[i].end <= d->text.len, "chunk %zu [%zu,%zu)", i, c[i].start, c[i].end);
        size_t tc = cnt(d->text.data + c[i].start, c[i].end - c[i].start, o->count_ctx);
        CHECK_MSG(tc == c[i].token_count, "chunk %zu: token_count %zu, recount %zu", i, c[i].token_count, tc);
        if (single_words_fit)
            CHECK_MSG(tc <= o->target_tokens, "chunk %zu has %zu tokens > %zu", i, tc, o->target_tokens);
        CHECK_MSG(c[i].char_start == utf8_length(d->text.data, c[i].start), "chunk %zu char_start", i);
        CHECK_MSG(c[i].char_end == utf8_length(d->text.data, c[i].end), "chunk %zu char_end", i);
        /* Chunks start and end on code point boundaries and not in white space. */
        CHECK(((unsigned char)d->text.data[c[i].start] & 0xC0) != 0x80);
        CHECK(c[i].end == d->text.len || ((unsigned char)d->text.data[c[i].end] & 0xC0) != 0x80);
        CHECK(!is_ws(d->text.data[c[i].end - 1]));
        if (i > 0) {
            CHECK_MSG(c[i].start > c[i - 1].start && c[i].end > c[i - 1].end, "chunk %zu out of order", i);
            if (c[i].start < c[i - 1].end) {
                /* Overlap: within budget, starting at a word. */
                size_t ov = cnt(d->text.data + c[i].start, c[i - 1].end - c[i].start, o->count_ctx);
                CHECK_MSG(o->count != NULL || ov <= ov_cap, "chunk %zu overlap %zu > %zu", i, ov, ov_cap);
                CHECK(is_ws(d->text.data[c[i].start - 1]));
            }
        }
    }
    /* Every non-space byte of every block is in some chunk. */
    size_t k = 0;
    for (size_t b = 0; b < d->n_blocks; b++)
        for (size_t p = d->blocks[b].start; p < d->blocks[b].end; p++) {
            if (is_ws(d->text.data[p]))
                continue;
            while (k < n && c[k].end <= p)
                k++;
            int in = 0;
            for (size_t q = k; q < n && c[q].start <= p && !in; q++)
                in = p < c[q].end;
            if (!in) {
                CHECK_MSG(0, "byte %zu of block %zu is in no chunk", p, b);
                b = d->n_blocks;
                break;
            }
        }
    return check_failures - fails;
}

static void test_token_count(void)
{
    CHECK(token_count_approx("", 0, NULL) == 0);
    CHECK(token_count_approx("   \n\t", 5, NULL) == 0);
    CHECK(token_count_approx("the cat sat.", 12, NULL) == 4);
    CHECK(token_count_approx("tokenization", 12, NULL) == 3);
    CHECK(token_count_approx("Hello, world!", 13, NULL) == 6);
    CHECK(token_count_approx("a-b", 3, NULL) == 3);
    CHECK(token_count_approx("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", 9, NULL) == 3); /* three ideographs */
    CHECK(token_count_approx("caf\xC3\xA9s", 6, NULL) == 2);                      /* 5 letters */
    CHECK(token_count_approx("x\xE2\x82\xAC", 4, NULL) == 2);                     /* x + euro sign */
    CHECK(token_count_approx("\xFF", 1, NULL) == 1);
    /* Additive over white space. */
    const char *a = "Structure-aware chunking, with overlap.", *b = "Second sentence here!";
    char both[128];
    snprintf(both, sizeof both, "%s %s", a, b);
    CHECK(token_count_approx(both, strlen(both), NULL) ==
          token_count_approx(a, strlen(a), NULL) + token_count_approx(b, strlen(b), NULL));
}

static char *sentences(unsigned seed, int n)
{
    static const char *words[] = {"alpha", "retrieval", "chunk", "the", "of", "embedding", "model", "vector",
                                  "index", "a", "query", "rank", "supercalifragilistic", "x", "data", "store"};
    size_t cap = (size_t)n * 200 + 1, len = 0;
    char *s = malloc(cap);
    for (int i = 0; i < n; i++) {
        int w = 3 + (int)(seed % 12);
        for (int j = 0; j < w; j++) {
            seed = seed * 1103515245u + 12345u;
            const char *word = words[(seed >> 16) % 16];
            len += (size_t)snprintf(s + len, cap - len, "%s%c%s", j ? " " : (i ? " " : ""),
                                    j == 0 ? 'S' : 's', word);
        }
        len += (size_t)snprintf(s + len, cap - len, "%s", (seed >> 8) % 3 ? "." : "?");
    }
    return s;
}

static void test_sections_and_paths(void)
{
    rg_doctext d;
    doctext_init(&d, NULL);
    add(&d, BLOCK_HEADING, 1, "Guide");
    add(&d, BLOCK_PARAGRAPH, 0, "Intro paragraph.");
    add(&d, BLOCK_HEADING, 2, "Install");
    char *big = sentences(7, 60);
    add(&d, BLOCK_PARAGRAPH, 0, big);
    add(&d, BLOCK_HEADING, 3, "Linux");
    add(&d, BLOCK_PARAGRAPH, 0, "Use the package manager.");
    add(&d, BLOCK_LIST_ITEM, 1, "apt install ragd");
    add(&d, BLOCK_HEADING, 2, "Usage");
    add(&d, BLOCK_PARAGRAPH, 0, "Run it.");
    add(&d, BLOCK_CODE, 0, "line one\nline two\n  indented three");
    add(&d, BLOCK_HEADING, 1, "Appendix");
    add(&d, BLOCK_TABLE_ROW, 0, "a | b");

    rg_chunk_opts o = {.target_tokens = 48, .overlap_tokens = 12, .count = NULL, .count_ctx = NULL};
    rg_chunk_span *c = NULL, *c2 = NULL;
    size_t n = 0, n2 = 0;
    rg_err e;
    rg_status st = chunker_split(&d, &o, &c, &n, &e);
    CHECK_OK(st, e);
    CHECK(n > 4);
    CHECK(check_chunks(&d, &o, c, n, 1) == 0);

    /* Heading paths, and a new section starts a new chunk. */
    int saw_install = 0, saw_linux = 0, saw_usage = 0, saw_appendix = 0, install_overlaps = 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = d.text.data + c[i].start;
        const char *p = c[i].heading_path ? c[i].heading_path : "";
        if (strncmp(t, "Guide", 5) == 0) {
            CHECK_STR(p, "Guide");
            CHECK(strstr(t, "Intro paragraph.") != NULL);
        }
        if (strcmp(p, "Guide > Install") == 0) {
            saw_install++;
            if (i > 0 && c[i].start < c[i - 1].end)
                install_overlaps++;
        }
        if (strncmp(t, "Linux", 5) == 0) {
            saw_linux = 1;
            CHECK_STR(p, "Guide > Install > Linux");
            CHECK(strstr(t, "apt install ragd") != NULL);
        }
        if (strncmp(t, "Usage", 5) == 0) {
            saw_usage = 1;
            CHECK_STR(p, "Guide > Usage");
            CHECK(strstr(t, "indented three") != NULL); /* the section fits: kept whole */
        }
        if (strncmp(t, "Appendix", 8) == 0) {
            saw_appendix = 1;
            CHECK_STR(p, "Appendix");
            CHECK(c[i].start > 0 && strncmp(d.text.data + c[i].start - 2, "\n\n", 2) == 0);
        }
        /* No chunk runs from one level-2 section into the next. */
        CHECK(!(strstr(t, "Run it.") && strstr(t, "Linux") && (size_t)(strstr(t, "Run it.") - t) < c[i].end - c[i].start));
    }
    CHECK(saw_install >= 3);
    CHECK_MSG(install_overlaps == saw_install - 1, "%d of %d Install chunks overlap", install_overlaps, saw_install);
    CHECK(saw_linux && saw_usage && saw_appendix);

    /* Deterministic. */
    st = chunker_split(&d, &o, &c2, &n2, &e);
    CHECK_OK(st, e);
    CHECK(n2 == n);
    for (size_t i = 0; i < n && i < n2; i++) {
        CHECK(c[i].start == c2[i].start && c[i].end == c2[i].end && c[i].token_count == c2[i].token_count);
        CHECK((!c[i].heading_path && !c2[i].heading_path) ||
              (c[i].heading_path && c2[i].heading_path && strcmp(c[i].heading_path, c2[i].heading_path) == 0));
    }
    chunker_free(c, n);
    chunker_free(c2, n2);

    /* No overlap: chunks do not intersect. */
    o.overlap_tokens = 0;
    st = chunker_split(&d, &o, &c, &n, &e);
    CHECK_OK(st, e);
    CHECK(check_chunks(&d, &o, c, n, 1) == 0);
    for (size_t i = 1; i < n; i++)
        CHECK(c[i].start >= c[i - 1].end);
    chunker_free(c, n);

    /* A large target: one chunk per section; a heading with no text of
     * its own yet stays with what follows. */
    o.target_tokens = 100000;
    o.overlap_tokens = 50;
    st = chunker_split(&d, &o, &c, &n, &e);
    CHECK_OK(st, e);
    CHECK(check_chunks(&d, &o, c, n, 1) == 0);
    CHECK(n == 5);
    const char *paths[] = {"Guide", "Guide > Install", "Guide > Install > Linux", "Guide > Usage", "Appendix"};
    const char *heads[] = {"Guide", "Install", "Linux", "Usage", "Appendix"};
    for (size_t i = 0; i < n && i < 5; i++) {
        CHECK_STR(c[i].heading_path, paths[i]);
        CHECK(strncmp(d.text.data + c[i].start, heads[i], strlen(heads[i])) == 0);
        CHECK(i + 1 == n || c[i + 1].start == c[i].end + 2); /* whole sections, no overlap across them */
    }
    chunker_free(c, n);

    rg_doctext d2;
    doctext_init(&d2, NULL);
    add(&d2, BLOCK_HEADING, 1, "Title");
    add(&d2, BLOCK_HEADING, 2, "Intro");
    add(&d2, BLOCK_PARAGRAPH, 0, "Intro text.");
    add(&d2, BLOCK_HEADING, 3, "Detail");
    add(&d2, BLOCK_PARAGRAPH, 0, "Detail text.");
    st = chunker_split(&d2, &o, &c, &n, &e);
    CHECK_OK(st, e);
    CHECK(n == 2);
    if (n == 2) {
        CHECK_STR(c[0].heading_path, "Title > Intro");
        CHECK(c[0].start == 0 && strncmp(d2.text.data + c[0].end - 11, "Intro text.", 11) == 0);
        CHECK_STR(c[1].heading_path, "Title > Intro > Detail");
    }
    chunker_free(c, n);
    doctext_free(&d2);
    free(big);
    doctext_free(&d);
}

static void test_overlap_single_section(void)
{
    rg_doctext d;
    doctext_init(&d, NULL);
    char *big = sentences(42, 200);
    add(&d, BLOCK_PARAGRAPH, 0, big);
    rg_chunk_opts o = {.target_tokens = 64, .overlap_tokens = 16, .count = NULL, .count_ctx = NULL};
    rg_chunk_span *c = NULL;
    size_t n = 0;
    rg_err e;
    CHECK_OK(chunker_split(&d, &o, &c, &n, &e), e);
    CHECK(n > 10);
    CHECK(check_chunks(&d, &o, c, n, 1) == 0);
    size_t with = 0, ov_sum = 0;
    for (size_t i = 1; i < n; i++)
        if (c[i].start < c[i - 1].end) {
            with++;
            ov_sum += token_count_approx(d.text.data + c[i].start, c[i - 1].end - c[i].start, NULL);
        }
    CHECK_MSG(with == n - 1, "%zu of %zu consecutive chunks overlap", with, n - 1);
    CHECK_MSG(with && ov_sum / with >= 6, "mean overlap %zu tokens", with ? ov_sum / with : 0);
    for (size_t i = 0; i < n; i++)
        CHECK(c[i].heading_path == NULL && c[i].token_count > 0);
    chunker_free(c, n);
    free(big);
    doctext_free(&d);
}

static void test_long_words_and_cjk(void)
{
    rg_doctext d;
    doctext_init(&d, NULL);
    char word[2001];
    for (int i = 0; i < 2000; i++)
        word[i] = (char)('a' + i % 26);
    word[2000] = '\0';
    add(&d, BLOCK_HEADING, 1, word); /* a heading that is one huge word */
    char para[3000];
    snprintf(para, sizeof para, "short %s tail", word);
    add(&d, BLOCK_PARAGRAPH, 0, para);
    /* CJK without spaces: 300 ideographs with a full stop every 50. */
    char cjk[2000];
    size_t p = 0;
    for (int i = 0; i < 300; i++) {
        memcpy(cjk + p, i % 50 == 49 ? "\xE3\x80\x82" : "\xE6\x97\xA5", 3);
        p += 3;
    }
    cjk[p] = '\0';
    add(&d, BLOCK_PARAGRAPH, 0, cjk);
    add(&d, BLOCK_CODE, 0, "int x;\nint y;\nint z;");

    rg_chunk_opts o = {.target_tokens = 16, .overlap_tokens = 4, .count = NULL, .count_ctx = NULL};
    rg_chunk_span *c = NULL;
    size_t n = 0;
    rg_err e;
    CHECK_OK(chunker_split(&d, &o, &c, &n, &e), e);
    CHECK(check_chunks(&d, &o, c, n, 1) == 0);
    CHECK(n > 2000 / 64 * 2);
    for (size_t i = 0; i < n; i++)
        if (c[i].start < d.blocks[0].end)
            CHECK(c[i].heading_path && utf8_length(c[i].heading_path, strlen(c[i].heading_path)) <= 200);
    chunker_free(c, n);

    /* A counter that is not additive (bytes) is still respected. */
    o.count = count_bytes;
    o.target_tokens = 100;
    o.overlap_tokens = 30;
    CHECK_OK(chunker_split(&d, &o, &c, &n, &e), e);
    CHECK(check_chunks(&d, &o, c, n, 1) == 0);
    chunker_free(c, n);
    doctext_free(&d);
}

static void test_random_documents(void)
{
    unsigned seed = 12345;
    for (int round = 0; round < 60; round++) {
        rg_doctext d;
        doctext_init(&d, NULL);
        int nb = 1 + (int)(seed % 40);
        for (int b = 0; b < nb; b++) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = (seed >> 16) % 10;
            if (r < 2) {
                char h[64];
                snprintf(h, sizeof h, "Heading %d", b);
                add(&d, BLOCK_HEADING, 1 + (int)((seed >> 20) % 6), h);
            } else {
                char *s = sentences(seed, 1 + (int)((seed >> 12) % 30));
                add(&d, r == 9 ? BLOCK_CODE : BLOCK_PARAGRAPH, 0, s);
                free(s);
            }
        }
        seed = seed * 1103515245u + 12345u;
        rg_chunk_opts o = {.target_tokens = 1 + (seed >> 16) % 120, .overlap_tokens = (seed >> 8) % 40,
                           .count = NULL, .count_ctx = NULL};
        rg_chunk_span *c = NULL;
        size_t n = 0;
        rg_err e;
        rg_status st = chunker_split(&d, &o, &c, &n, &e);
        CHECK_OK(st, e);
        int f = check_chunks(&d, &o, c, n, 1);
        CHECK_MSG(f == 0, "round %d (target %zu, overlap %zu)", round, o.target_tokens, o.overlap_tokens);
        chunker_free(c, n);
        doctext_free(&d);
        if (f)
            break;
    }
}

static void test_edge_cases(void)
{
    rg_doctext d;
    doctext_init(&d, NULL);
    rg_chunk_opts o = {.target_tokens = 10, .overlap_tokens = 2, .count = NULL, .count_ctx = NULL};
    rg_chunk_span *c = (rg_chunk_span *)1;
    size_t n = 99;
    rg_err e;
    CHECK_OK(chunker_split(&d, &o, &c, &n, &e), e);
    CHECK(n == 0 && c == NULL);
    add(&d, BLOCK_PARAGRAPH, 0, "x");
    o.target_tokens = 0;
    CHECK(chunker_split(&d, &o, &c, &n, &e) == RG_ERR_INVALID);
    o.target_tokens = 1;
    CHECK_OK(chunker_split(&d, &o, &c, &n, &e), e);
    CHECK(n == 1 && c[0].start == 0 && c[0].end == 1 && c[0].char_end == 1);
    chunker_free(c, n);
    doctext_free(&d);
}

int main(void)
{
    test_token_count();
    test_sections_and_paths();
    test_overlap_single_section();
    test_long_words_and_cjk();
    test_random_documents();
    test_edge_cases();
    return check_finish("test_chunker");
}
