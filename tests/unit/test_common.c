/* Unit tests for common/ (hashing, UTF-8, buffers, queue) and the lexical
 * query builder of index/. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/buf.h"
#include "common/queue.h"
#include "common/sha256.h"
#include "common/utf8.h"
#include "index/lexical.h"

static void test_sha256(void)
{
    char hex[65];
    sha256_hex("", 0, hex);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex("abc", 3, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(two, strlen(two), hex);
    CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* Fed in odd pieces, the digest is the same as in one go. */
    char *million = malloc(1000000);
    memset(million, 'a', 1000000);
    rg_sha256 s;
    uint8_t d[32];
    sha256_init(&s);
    for (size_t off = 0; off < 1000000; off += 997)
        sha256_update(&s, million + off, off + 997 > 1000000 ? 1000000 - off : 997);
    sha256_final(&s, d);
    sha256_to_hex(d, hex);
    CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(million);
}

static void test_utf8(void)
{
    CHECK(utf8_is_valid("héllo 日本", strlen("héllo 日本")));
    CHECK(!utf8_is_valid("a\xff" "b", 3));
    CHECK(!utf8_is_valid("a\0b", 3));
    CHECK(!utf8_is_valid("\xC0\xAF", 2)); /* overlong '/' */
    rg_buf b;
    rg_buf_init(&b, 0);
    size_t bad = 0;
    CHECK(utf8_sanitize("a\xff" "b\0c\xe6\x97", 7, &b, &bad, NULL) == RG_OK);
    CHECK_STR(b.data, "a\xEF\xBF\xBD" "bc\xEF\xBF\xBD\xEF\xBF\xBD");
    CHECK(bad == 3);
    CHECK(utf8_is_valid(b.data, b.len));
    rg_buf_free(&b);
    CHECK(utf8_length("日本語", strlen("日本語")) == 3);
    CHECK(utf8_truncate("日本語", 9, 4) == 3);
    CHECK(utf8_truncate("abc", 3, 10) == 3);
}

static void test_buf_limit(void)
{
    rg_buf b;
    rg_err e;
    rg_buf_init(&b, 8);
    CHECK(rg_buf_append_str(&b, "12345678", &e) == RG_OK);
    CHECK(rg_buf_append_char(&b, '9', &e) == RG_ERR_TOO_LARGE);
    CHECK(b.len == 8);
    CHECK_STR(b.data, "12345678");
    rg_buf_free(&b);
    rg_buf_init(&b, 0);
    CHECK(rg_buf_printf(&b, &e, "%d-%s", 42, "x") == RG_OK);
    CHECK_STR(b.data, "42-x");
    rg_buf_free(&b);
}

static void test_queue_bounds(void)
{
    rg_queue q;
    rg_err e;
    int items[3] = {1, 2, 3};
    CHECK(queue_init(&q, 2, &e) == RG_OK);
    CHECK(queue_push(&q, &items[0], &e) == RG_OK);
    CHECK(queue_push(&q, &items[1], &e) == RG_OK);
    CHECK(queue_push(&q, &items[2], &e) == RG_ERR_BUSY);
    CHECK(queue_pop(&q) == &items[0]);
    queue_close(&q);
    CHECK(queue_push(&q, &items[2], &e) == RG_ERR_INVALID);
    CHECK(queue_pop(&q) == &items[1]);
    CHECK(queue_pop(&q) == NULL);
    queue_destroy(&q);
}

static void match_is(const char *query, const char *want)
{
    rg_buf b;
    rg_err e;
    rg_buf_init(&b, 0);
    rg_status st = lexical_build_match(query, &b, &e);
    if (want) {
        CHECK_MSG(st == RG_OK, "%s: %s", query, e.msg);
        if (st == RG_OK)
            CHECK_STR(b.data, want);
    } else {
        CHECK_MSG(st == RG_ERR_INVALID, "%s should have no words", query);
    }
    rg_buf_free(&b);
}

static void test_lexical_match(void)
{
    match_is("delete a document", "\"delete\" OR \"a\" OR \"document\"");
    /* FTS5 syntax in user text is quoted away, never interpreted. */
    match_is("foo\" AND NEAR(bar* -baz)", "\"foo\" OR \"AND\" OR \"NEAR\" OR \"bar\" OR \"baz\"");
    match_is("café 日本", "\"café\" OR \"日本\"");
    match_is("?!  ... --", NULL);
    match_is("", NULL);
    /* At most LEXICAL_MAX_TERMS terms. */
    char many[1000] = "";
    for (int i = 0; i < 100; i++)
        strcat(many, "w ");
    rg_buf b;
    rg_buf_init(&b, 0);
    CHECK(lexical_build_match(many, &b, NULL) == RG_OK);
    size_t terms = 0;
    for (const char *p = b.data; (p = strstr(p, "\"w\"")); p += 3)
        terms++;
    CHECK(terms == LEXICAL_MAX_TERMS);
    rg_buf_free(&b);
}

int main(void)
{
    test_sha256();
    test_utf8();
    test_buf_limit();
    test_queue_bounds();
    test_lexical_match();
    return check_finish("test_common");
}
