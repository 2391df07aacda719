/* fuzz_loaders.c - an uploaded document: type sniffing and the text,
 * Markdown, HTML and XML loaders (ingest/; libxml2 must load no external
 * entity and reach no network), then the chunker on what they extracted.
 * The first input byte picks the path (t, m, h, x; s: sniff a file name
 * written before a NUL byte, then load as sniffed). Checked beside "no
 * crash": the extracted text is valid UTF-8 and the chunks cover it in
 * order within its bounds. */
#include "tests/fuzz/fuzz.h"

#include <string.h>

#include "common/utf8.h"
#include "ingest/chunker.h"
#include "ingest/loader.h"

static void check_chunks(const rg_doctext *doc, size_t target)
{
    rg_chunk_opts o = {.target_tokens = target, .overlap_tokens = target / 4, .count = token_count_approx};
    rg_chunk_span *c = NULL;
    size_t n = 0;
    rg_err e = {0};
    if (chunker_split(doc, &o, &c, &n, &e) != RG_OK) {
        FUZZ_CHECK(e.msg[0], "chunker_split failed without a message");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(c[i].start <= c[i].end && c[i].end <= doc->text.len, "chunk %zu at [%zu, %zu) of %zu bytes", i,
                   c[i].start, c[i].end, doc->text.len);
        FUZZ_CHECK(i == 0 || c[i].start >= c[i - 1].start, "chunk %zu starts before chunk %zu", i, i - 1);
        FUZZ_CHECK(utf8_is_valid(doc->text.data + c[i].start, c[i].end - c[i].start), "chunk %zu splits a character",
                   i);
    }
    chunker_free(c, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    const char *mime = NULL;
    rg_err e = {0};
    switch (data[0]) {
    case 't': mime = MIME_TEXT; break;
    case 'm': mime = MIME_MARKDOWN; break;
    case 'h': mime = MIME_HTML; break;
    case 'x': mime = MIME_XML; break;
    case 's': {
        const char *nul = memchr(body, '\0', len);
        if (!nul)
            return 0;
        mime = loader_sniff(body, nul + 1, len - (size_t)(nul + 1 - body), &e);
        FUZZ_CHECK(mime || e.msg[0], "loader_sniff refused without a reason");
        len -= (size_t)(nul + 1 - body);
        body = nul + 1;
        break;
    }
    default: return 0;
    }
    if (!mime)
        return 0;
    rg_load_limits lim = {.max_text_bytes = 1 << 20, .max_blocks = 4096, .max_depth = 64};
    rg_doctext doc;
    doctext_init(&doc, &lim);
    rg_status st = loader_load(mime, body, len, &doc, &e);
    FUZZ_CHECK(st == RG_OK || e.msg[0], "loader_load(%s) failed without a message", mime);
    if (st == RG_OK) {
        FUZZ_CHECK(utf8_is_valid(doc.text.data, doc.text.len), "extracted text is not valid UTF-8");
        for (size_t i = 0; i < doc.n_blocks; i++)
            FUZZ_CHECK(doc.blocks[i].start <= doc.blocks[i].end && doc.blocks[i].end <= doc.text.len,
                       "block %zu out of the text", i);
        check_chunks(&doc, 8 + (size & 63));
    }
    doctext_free(&doc);
    return 0;
}
