/* test_loaders.c - type sniffing and the text, Markdown, HTML and XML loaders. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "common/err.h"
#include "ingest/doctext.h"
#include "ingest/loader.h"

static char block_buf[4096];

/* Text of block i (truncated to the buffer), or "" when there is none. */
static const char *blk(const rg_doctext *d, size_t i)
{
    if (i >= d->n_blocks)
        return "";
    size_t n = d->blocks[i].end - d->blocks[i].start;
    if (n >= sizeof block_buf)
        n = sizeof block_buf - 1;
    memcpy(block_buf, d->text.data + d->blocks[i].start, n);
    block_buf[n] = '\0';
    return block_buf;
}

static int has_block(const rg_doctext *d, rg_block_kind kind, int level, const char *text)
{
    for (size_t i = 0; i < d->n_blocks; i++)
        if (d->blocks[i].kind == kind && (level < 0 || d->blocks[i].level == level) && strcmp(blk(d, i), text) == 0)
            return 1;
    return 0;
}

static int contains(const rg_doctext *d, const char *s)
{
    return d->text.data && strstr(d->text.data, s) != NULL;
}

/* Blocks are in order, non-overlapping, separated by "\n\n", and cover the text. */
static int well_formed(const rg_doctext *d)
{
    size_t pos = 0;
    for (size_t i = 0; i < d->n_blocks; i++) {
        const rg_block *b = &d->blocks[i];
        if (i > 0) {
            if (b->start != pos + 2 || memcmp(d->text.data + pos, "\n\n", 2) != 0)
                return 0;
        } else if (b->start != 0) {
            return 0;
        }
        if (b->end <= b->start)
            return 0;
        pos = b->end;
    }
    return pos == d->text.len && (d->text.len == 0 || d->text.data[d->text.len] == '\0');
}

typedef rg_status (*loader_fn)(const char *, size_t, rg_doctext *, rg_err *);

static rg_status load_with(loader_fn fn, const char *s, size_t n, rg_doctext *d, rg_err *e, const rg_load_limits *lim)
{
    doctext_init(d, lim);
    rg_err_clear(e);
    return fn(s, n, d, e);
}

static void test_text(void)
{
    rg_doctext d;
    rg_err e;
    const char *s = "Hello   world.\r\n\r\nSecond para\nline two.\n\n\n \t \nThird\n";
    rg_status st = load_with(loader_text, s, strlen(s), &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK(d.n_blocks == 3);
    CHECK_STR(d.text.data, "Hello world.\n\nSecond para line two.\n\nThird");
    CHECK(well_formed(&d));
    CHECK(d.blocks[1].kind == BLOCK_PARAGRAPH && d.blocks[1].page == 0);
    CHECK(d.title == NULL);
    doctext_free(&d);

    /* Form feeds are page breaks. */
    s = "page one\fpage two\n\nstill two\fthree";
    st = load_with(loader_text, s, strlen(s), &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK(d.n_blocks == 4);
    CHECK(d.blocks[0].page == 1 && d.blocks[1].page == 2 && d.blocks[2].page == 2 && d.blocks[3].page == 3);
    doctext_free(&d);

    /* UTF-8 byte order mark dropped; UTF-16LE with BOM converted. */
    s = "\xEF\xBB\xBFhi";
    st = load_with(loader_text, s, strlen(s), &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK_STR(d.text.data, "hi");
    doctext_free(&d);
    const char u16[] = "\xFF\xFEh\0\xE9\0 \0\x3D\xD8\x00\xDE";
    st = load_with(loader_text, u16, sizeof u16 - 1, &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK_STR(d.text.data, "h\xC3\xA9 \xF0\x9F\x98\x80");
    doctext_free(&d);
}

static void test_invalid_utf8(void)
{
    rg_doctext d;
    rg_err e;
    const char *s = "caf\xE9 au lait, na\xEFve \xC3\x28 text that is mostly fine";
    rg_status st = load_with(loader_text, s, strlen(s), &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK(contains(&d, "caf\xEF\xBF\xBD au lait"));
    CHECK(contains(&d, "\xEF\xBF\xBD("));
    doctext_free(&d);

    st = load_with(loader_markdown, s, strlen(s), &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK(contains(&d, "caf\xEF\xBF\xBD au lait"));
    doctext_free(&d);

    const char *h = "<html><body><p>caf\xE9 ok and a long enough paragraph</p></body></html>";
    st = load_with(loader_html, h, strlen(h), &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK(contains(&d, "caf\xEF\xBF\xBD ok"));
    doctext_free(&d);

    /* "charset=" in running text is not a declaration. */
    h = "<p>set charset=latin1 here, caf\xC3\xA9</p>";
    st = load_with(loader_html, h, strlen(h), &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK(contains(&d, "caf\xC3\xA9"));
    doctext_free(&d);

    /* A declared charset is honoured. */
    h = "<html><head><meta charset=\"iso-8859-1\"></head><body><p>caf\xE9</p></body></html>";
    st = load_with(loader_html, h, strlen(h), &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK_STR(d.text.data, "caf\xC3\xA9");
    doctext_free(&d);
}

static void test_binary_and_empty(void)
{
    rg_doctext d;
    rg_err e;
    const char bin[] = "abc\0def\0ghi";
    rg_status st = load_with(loader_text, bin, sizeof bin - 1, &d, &e, NULL);
    CHECK(st == RG_ERR_UNSUPPORTED);
    CHECK(e.status == RG_ERR_UNSUPPORTED && strstr(e.msg, "binary"));
    doctext_free(&d);

    char junk[400];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i % 3 == 0 ? 0xFF : 'a'); /* a third invalid */
    st = load_with(loader_markdown, junk, sizeof junk, &d, &e, NULL);
    CHECK(st == RG_ERR_UNSUPPORTED);
    doctext_free(&d);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i % 4 == 0 ? 0x01 : 'a'); /* a quarter control characters */
    st = load_with(loader_text, junk, sizeof junk, &d, &e, NULL);
    CHECK(st == RG_ERR_UNSUPPORTED);
    doctext_free(&d);

    const char *pdf = "%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj";
    st = load_with(loader_text, pdf, strlen(pdf), &d, &e, NULL);
    CHECK(st == RG_ERR_UNSUPPORTED && strstr(e.msg, "PDF"));
    doctext_free(&d);

    const char *empties[] = {"", "   \n\t\n  ", "\n\n\n"};
    for (size_t i = 0; i < 3; i++) {
        st = load_with(loader_text, empties[i], strlen(empties[i]), &d, &e, NULL);
        CHECK(st == RG_ERR_INVALID && strstr(e.msg, "no text"));
        doctext_free(&d);
        st = load_with(loader_markdown, empties[i], strlen(empties[i]), &d, &e, NULL);
        CHECK(st == RG_ERR_INVALID);
        doctext_free(&d);
    }
    const char *h = "<html><head><title>t</title><script>var x = 1;</script></head><body> \n </body></html>";
    st = load_with(loader_html, h, strlen(h), &d, &e, NULL);
    CHECK(st == RG_ERR_INVALID && strstr(e.msg, "no text"));
    doctext_free(&d);
    st = load_with(loader_xml, "<a> <b/> </a>", 13, &d, &e, NULL);
    CHECK(st == RG_ERR_INVALID);
    doctext_free(&d);
}

static void test_limits(void)
{
    rg_doctext d;
    rg_err e;
    rg_load_limits lim = {.max_text_bytes = 100, .max_blocks = 0, .max_depth = 0};
    char big[1000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i % 7 == 6 ? ' ' : 'a' + (char)(i % 26));
    rg_status st = load_with(loader_text, big, sizeof big, &d, &e, &lim);
    CHECK(st == RG_ERR_TOO_LARGE);
    CHECK(strstr(e.msg, "100 bytes") != NULL);
    CHECK(d.text.len <= 100);
    doctext_free(&d);
    st = load_with(loader_markdown, big, sizeof big, &d, &e, &lim);
    CHECK(st == RG_ERR_TOO_LARGE);
    doctext_free(&d);

    char html[1200];
    snprintf(html, sizeof html, "<p>%.*s</p>", (int)sizeof big, big);
    st = load_with(loader_html, html, strlen(html), &d, &e, &lim);
    CHECK(st == RG_ERR_TOO_LARGE);
    doctext_free(&d);
    st = load_with(loader_xml, html, strlen(html), &d, &e, &lim);
    CHECK(st == RG_ERR_TOO_LARGE);
    doctext_free(&d);

    /* Exactly at the limit is fine. */
    st = load_with(loader_text, big, 100, &d, &e, &lim);
    CHECK_OK(st, e);
    doctext_free(&d);

    rg_load_limits lb = {.max_text_bytes = 0, .max_blocks = 3, .max_depth = 0};
    const char *s = "a\n\nb\n\nc\n\nd\n\ne";
    st = load_with(loader_text, s, strlen(s), &d, &e, &lb);
    CHECK(st == RG_ERR_TOO_LARGE);
    doctext_free(&d);
}

static void test_markdown(void)
{
    rg_doctext d;
    rg_err e;
    const char *md = "---\n"
                     "title: \"Front Title\"\n"
                     "tags: [a, b]\n"
                     "---\n"
                     "# Guide *to* ragd\n"
                     "\n"
                     "Some **bold** text, a [link](http://example.com/x_(y)) and `code_span`.\n"
                     "Continued line with snake_case_name and 2 * 3.\n"
                     "\n"
                     "Setext Heading\n"
                     "--------------\n"
                     "\n"
                     "- first item\n"
                     "- second item\n"
                     "  continued\n"
                     "    - nested item\n"
                     "1. ordered ![alt text](img.png)\n"
                     "\n"
                     "```c\n"
                     "int main(void) {\n"
                     "    return **x**; /* verbatim */\n"
                     "}\n"
                     "```\n"
                     "\n"
                     "> quoted *text*\n"
                     "> more quote\n"
                     "\n"
                     "| Name | Value |\n"
                     "|------|:-----:|\n"
                     "| a    | 1 \\| 2 |\n"
                     "| b    | 2     |\n"
                     "\n"
                     "***\n"
                     "Title Two\n"
                     "=========\n"
                     "### Deep ###\n"
                     "[ref]: http://example.com\n"
                     "Final para &amp; entity &#x41;.\n";
    rg_status st = load_with(loader_markdown, md, strlen(md), &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK(well_formed(&d));
    CHECK(d.title && strcmp(d.title, "Front Title") == 0);
    CHECK(has_block(&d, BLOCK_HEADING, 1, "Guide to ragd"));
    CHECK(has_block(&d, BLOCK_PARAGRAPH, 0,
                    "Some bold text, a link and code_span. Continued line with snake_case_name and 2 * 3."));
    CHECK(has_block(&d, BLOCK_HEADING, 2, "Setext Heading"));
    CHECK(has_block(&d, BLOCK_LIST_ITEM, 1, "first item"));
    CHECK(has_block(&d, BLOCK_LIST_ITEM, 1, "second item continued"));
    CHECK(has_block(&d, BLOCK_LIST_ITEM, 2, "nested item"));
    CHECK(has_block(&d, BLOCK_LIST_ITEM, -1, "ordered alt text"));
    CHECK(has_block(&d, BLOCK_CODE, 0, "int main(void) {\n    return **x**; /* verbatim */\n}"));
    CHECK(has_block(&d, BLOCK_QUOTE, 0, "quoted text more quote"));
    CHECK(has_block(&d, BLOCK_TABLE_ROW, 0, "Name | Value"));
    CHECK(has_block(&d, BLOCK_TABLE_ROW, 0, "a | 1 | 2"));
    CHECK(has_block(&d, BLOCK_TABLE_ROW, 0, "b | 2"));
    CHECK(has_block(&d, BLOCK_HEADING, 1, "Title Two"));
    CHECK(has_block(&d, BLOCK_HEADING, 3, "Deep"));
    CHECK(has_block(&d, BLOCK_PARAGRAPH, 0, "Final para & entity A."));
    CHECK(!contains(&d, "---"));
    CHECK(!contains(&d, "example.com"));
    CHECK(!contains(&d, "tags:"));
    doctext_free(&d);

    /* No front matter: the first H1 is the title; an unclosed fence runs to the end. */
    md = "Intro\n\n# The Title\n\n~~~\ncode\n\n  more";
    st = load_with(loader_markdown, md, strlen(md), &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK(d.title && strcmp(d.title, "The Title") == 0);
    CHECK(has_block(&d, BLOCK_CODE, 0, "code\n\n  more"));
    doctext_free(&d);

    /* Hostile inline markup stays linear and keeps its text. */
    size_t n = 200000;
    char *h = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        h[i] = "[`*_](<&"[i % 8];
    h[n] = '\0';
    clock_t t0 = clock();
    st = load_with(loader_markdown, h, n, &d, &e, NULL);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK_OK(st, e);
    CHECK_MSG(secs < 2.0, "hostile markdown took %.2fs", secs);
    doctext_free(&d);
    free(h);
}

static void test_html(void)
{
    rg_doctext d;
    rg_err e;
    const char *h = "<!DOCTYPE html><html><head><title> The  Page </title>"
                    "<style>body { color: red }</style><script>var secret = 'SCRIPT';</script></head>"
                    "<body><header><nav><a href='/'>Home NAVLINK</a></nav></header>"
                    "<main><h1>Main <em>Heading</em></h1>"
                    "<p>First &amp; <b>bold</b> paragraph.<br>Second line.</p>"
                    "<div>Div text<p>inner para</p>tail text</div>"
                    "<ul><li>one</li><li>two<ul><li>nested</li></ul></li></ul>"
                    "<table><tr><th>Name</th><th>Value</th></tr><tr><td>a</td><td><p>1</p></td></tr></table>"
                    "<pre>  line 1\n    line 2 &lt;x&gt;</pre>"
                    "<blockquote><p>quoted</p></blockquote>"
                    "<h2>Sub</h2><noscript>NOSCRIPT</noscript><template>TEMPLATE</template>"
                    "<aside>ASIDE</aside><form><input value='x'>FORMTEXT</form><svg><text>SVGTEXT</text></svg>"
                    "<div hidden>HIDDEN</div><div role='navigation'>ROLENAV</div>"
                    "<article><header><h3>Article head</h3></header><p>article body</p></article>"
                    "</main><footer>FOOTER</footer></body></html>";
    rg_status st = load_with(loader_html, h, strlen(h), &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK(well_formed(&d));
    CHECK(d.title && strcmp(d.title, "The Page") == 0);
    CHECK(has_block(&d, BLOCK_HEADING, 1, "Main Heading"));
    CHECK(has_block(&d, BLOCK_PARAGRAPH, 0, "First & bold paragraph. Second line."));
    CHECK(has_block(&d, BLOCK_PARAGRAPH, 0, "Div text"));
    CHECK(has_block(&d, BLOCK_PARAGRAPH, 0, "inner para"));
    CHECK(has_block(&d, BLOCK_PARAGRAPH, 0, "tail text"));
    CHECK(has_block(&d, BLOCK_LIST_ITEM, 1, "one"));
    CHECK(has_block(&d, BLOCK_LIST_ITEM, 1, "two"));
    CHECK(has_block(&d, BLOCK_LIST_ITEM, 2, "nested"));
    CHECK(has_block(&d, BLOCK_TABLE_ROW, 0, "Name | Value"));
    CHECK(has_block(&d, BLOCK_TABLE_ROW, 0, "a | 1"));
    CHECK(has_block(&d, BLOCK_CODE, 0, "  line 1\n    line 2 <x>"));
    CHECK(has_block(&d, BLOCK_QUOTE, 0, "quoted"));
    CHECK(has_block(&d, BLOCK_HEADING, 2, "Sub"));
    CHECK(has_block(&d, BLOCK_HEADING, 3, "Article head"));
    CHECK(has_block(&d, BLOCK_PARAGRAPH, 0, "article body"));
    const char *dropped[] = {"SCRIPT", "color", "NAVLINK", "NOSCRIPT", "TEMPLATE", "ASIDE", "FORMTEXT",
                             "SVGTEXT", "HIDDEN", "ROLENAV", "FOOTER", "The Page"};
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++)
        CHECK_MSG(!contains(&d, dropped[i]), "%s should have been dropped", dropped[i]);
    doctext_free(&d);

    /* Without <title>, the first h1 is the title. */
    h = "<body><h2>two</h2><h1>One</h1><p>x</p></body>";
    st = load_with(loader_html, h, strlen(h), &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK(d.title && strcmp(d.title, "One") == 0);
    doctext_free(&d);
}

static char *nested(const char *open, const char *mid, const char *close, size_t depth, size_t *len)
{
    size_t lo = strlen(open), lm = strlen(mid), lc = strlen(close);
    char *s = malloc(depth * (lo + lc) + lm + 1);
    size_t p = 0;
    for (size_t i = 0; i < depth; i++, p += lo)
        memcpy(s + p, open, lo);
    memcpy(s + p, mid, lm);
    p += lm;
    for (size_t i = 0; i < depth; i++, p += lc)
        memcpy(s + p, close, lc);
    s[p] = '\0';
    *len = p;
    return s;
}

static void test_deep_nesting(void)
{
    rg_doctext d;
    rg_err e;
    const char *opens[] = {"<div>", "<b>", "<ul><li>", "<table><tr><td>"};
    const char *closes[] = {"</div>", "</b>", "</li></ul>", "</td></tr></table>"};
    for (size_t k = 0; k < 4; k++) {
        size_t len;
        char *s = nested(opens[k], "deep text", closes[k], 100000, &len);
        clock_t t0 = clock();
        rg_status st = load_with(loader_html, s, len, &d, &e, NULL);
        double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
        CHECK_OK(st, e);
        CHECK_MSG(contains(&d, "deep text"), "deep text lost for %s", opens[k]);
        CHECK_MSG(secs < 5.0, "%s x100000 took %.2fs", opens[k], secs);
        doctext_free(&d);
        free(s);
    }
    /* Unclosed, and as XML. */
    size_t len;
    char *s = nested("<div>", "deep text", "", 100000, &len);
    rg_status st = load_with(loader_html, s, len, &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK(contains(&d, "deep text"));
    doctext_free(&d);
    free(s);
    s = nested("<a>", "deep text", "</a>", 100000, &len);
    st = load_with(loader_xml, s, len, &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK(contains(&d, "deep text"));
    doctext_free(&d);
    free(s);

    /* Past max_depth blocks are flattened into their ancestor, not dropped. */
    rg_load_limits lim = {.max_text_bytes = 0, .max_blocks = 0, .max_depth = 3};
    const char *h = "<html><body><div>outer<div><div><p>alpha</p><p>beta</p></div></div></div><p>after</p></body></html>";
    st = load_with(loader_html, h, strlen(h), &d, &e, &lim);
    CHECK_OK(st, e);
    CHECK(contains(&d, "alpha beta"));
    CHECK(has_block(&d, BLOCK_PARAGRAPH, 0, "after"));
    doctext_free(&d);
    const char *x = "<r><a><b><c><d>one</d><d>two</d></c></b></a><e>three</e></r>";
    st = load_with(loader_xml, x, strlen(x), &d, &e, &lim);
    CHECK_OK(st, e);
    CHECK(contains(&d, "one two"));
    CHECK(has_block(&d, BLOCK_PARAGRAPH, 0, "three"));
    doctext_free(&d);
}

static void test_xml(void)
{
    rg_doctext d;
    rg_err e;
    const char *x = "<?xml version=\"1.0\"?>\n<doc><title>T</title><sec><para>Hello <b>bold</b> world "
                    "<![CDATA[<raw>]]></para>\n  <para>Second</para></sec><!-- comment --><?pi x?></doc>";
    rg_status st = load_with(loader_xml, x, strlen(x), &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK(well_formed(&d));
    CHECK(d.n_blocks == 3);
    CHECK_STR(blk(&d, 0), "T");
    CHECK_STR(blk(&d, 1), "Hello bold world <raw>");
    CHECK_STR(blk(&d, 2), "Second");
    doctext_free(&d);

    /* XXE: the external entity is never loaded. */
    FILE *f = fopen("/etc/passwd", "r");
    char line[256] = "";
    if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = '\0';
        fclose(f);
    }
    char *colon = strchr(line, ':');
    if (colon)
        *colon = '\0'; /* the first user name, e.g. "root" */
    const char *xxe = "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>";
    st = load_with(loader_xml, xxe, strlen(xxe), &d, &e, NULL);
    CHECK(st == RG_ERR_INVALID || (st == RG_OK && !contains(&d, "/bin/") && !contains(&d, line)));
    doctext_free(&d);
    xxe = "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\"><!ENTITY co \"Acme Corp\">]>"
          "<x><p>before &e; after</p><p>&co; made it</p></x>";
    st = load_with(loader_xml, xxe, strlen(xxe), &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK(has_block(&d, BLOCK_PARAGRAPH, 0, "before after"));
    CHECK(has_block(&d, BLOCK_PARAGRAPH, 0, "Acme Corp made it"));
    CHECK(!contains(&d, "/bin/"));
    CHECK(line[0] == '\0' || !contains(&d, line));
    doctext_free(&d);
    /* The same through the HTML loader. */
    st = load_with(loader_html, xxe, strlen(xxe), &d, &e, NULL);
    CHECK(st != RG_OK || !contains(&d, "/bin/"));
    doctext_free(&d);

    /* Billion laughs: bounded. */
    const char *lol = "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"lol\">"
                      "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">"
                      "<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\"><!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">"
                      "<!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\"><!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\">"
                      "<!ENTITY h \"&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;\"><!ENTITY i \"&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;\">"
                      "]><l>start &i; end</l>";
    clock_t t0 = clock();
    st = load_with(loader_xml, lol, strlen(lol), &d, &e, NULL);
    CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
    CHECK(st != RG_OK || d.text.len < 1000);
    doctext_free(&d);

    /* XHTML through the XML loader follows the HTML rules. */
    const char *xh = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                     "<html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>X Title</title></head>"
                     "<body><h1>Head</h1><script>bad()</script><p>Para <i>one</i></p></body></html>";
    st = load_with(loader_xml, xh, strlen(xh), &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK(d.title && strcmp(d.title, "X Title") == 0);
    CHECK(has_block(&d, BLOCK_HEADING, 1, "Head"));
    CHECK(has_block(&d, BLOCK_PARAGRAPH, 0, "Para one"));
    CHECK(!contains(&d, "bad()"));
    doctext_free(&d);

    /* Not XML at all: recovered as text rather than refused. */
    st = load_with(loader_xml, "just words", 10, &d, &e, NULL);
    CHECK_OK(st, e);
    CHECK(contains(&d, "just words"));
    doctext_free(&d);
}

static void test_sniff(void)
{
    rg_err e;
    const char *m;
    CHECK((m = loader_sniff("notes.txt", "hello", 5, &e)) && strcmp(m, MIME_TEXT) == 0);
    CHECK((m = loader_sniff("dir.v2/README.MD", "# hi", 4, &e)) && strcmp(m, MIME_MARKDOWN) == 0);
    CHECK((m = loader_sniff("a.Markdown", "x", 1, &e)) && strcmp(m, MIME_MARKDOWN) == 0);
    CHECK((m = loader_sniff("x.HTM", "<p>", 3, &e)) && strcmp(m, MIME_HTML) == 0);
    CHECK((m = loader_sniff("x.xhtml", "<?xml version='1.0'?><html/>", 28, &e)) && strcmp(m, MIME_HTML) == 0);
    CHECK((m = loader_sniff("feed.xml", "<?xml version='1.0'?><rss/>", 27, &e)) && strcmp(m, MIME_XML) == 0);
    CHECK((m = loader_sniff("server.log", "a log", 5, &e)) && strcmp(m, MIME_TEXT) == 0);
    const char *xh = "<?xml version='1.0'?>\n<html xmlns='http://www.w3.org/1999/xhtml'><body/></html>";
    CHECK((m = loader_sniff("page.xml", xh, strlen(xh), &e)) && strcmp(m, MIME_HTML) == 0);
    /* By content when the extension is unknown or absent. */
    CHECK((m = loader_sniff(NULL, "\xEF\xBB\xBF  <!DOCTYPE HTML><p>", 23, &e)) && strcmp(m, MIME_HTML) == 0);
    CHECK((m = loader_sniff("upload", "<html><body>x", 13, &e)) && strcmp(m, MIME_HTML) == 0);
    CHECK((m = loader_sniff("data.bin", "<?xml version='1.0'?><a/>", 25, &e)) && strcmp(m, MIME_XML) == 0);
    CHECK((m = loader_sniff(xh, xh, strlen(xh), &e)) && strcmp(m, MIME_HTML) == 0);
    CHECK((m = loader_sniff("", "plain words", 11, &e)) && strcmp(m, MIME_TEXT) == 0);
    CHECK((m = loader_sniff("page", "<!-- saved --><html>", 20, &e)) && strcmp(m, MIME_HTML) == 0);
    CHECK((m = loader_sniff(".bashrc", "export X=1", 10, &e)) && strcmp(m, MIME_TEXT) == 0);
    /* Binary: refused, also behind a text extension. */
    const char bin[] = "text\0\0\0\x01\x02";
    rg_err_clear(&e);
    CHECK(loader_sniff("a.txt", bin, sizeof bin - 1, &e) == NULL && e.status == RG_ERR_UNSUPPORTED);
    const struct {
        const char *data;
        size_t len;
        const char *word;
    } magic[] = {
        {"%PDF-1.4", 8, "PDF"},          {"PK\x03\x04rest", 8, "ZIP"}, {"\x89PNG\r\n\x1a\n", 8, "PNG"},
        {"\xFF\xD8\xFF\xE0", 4, "JPEG"}, {"GIF89a", 6, "GIF"},         {"\x7F" "ELF\x02", 5, "ELF"},
        {"\x1F\x8B\x08", 3, "gzip"},
    };
    for (size_t i = 0; i < sizeof magic / sizeof magic[0]; i++) {
        rg_err_clear(&e);
        m = loader_sniff("file.txt", magic[i].data, magic[i].len, &e);
        CHECK_MSG(m == NULL && e.status == RG_ERR_UNSUPPORTED && strstr(e.msg, magic[i].word) &&
                      strstr(e.msg, "not supported yet"),
                  "%s: %s", magic[i].word, e.msg);
    }
    /* A legacy charset declared in HTML is not mistaken for binary. */
    const char *latin = "<meta charset=windows-1252><p>\xE9\xE8\xE0\xF9\xE9\xE8\xE0\xF9</p>";
    CHECK((m = loader_sniff("x.html", latin, strlen(latin), &e)) && strcmp(m, MIME_HTML) == 0);
}

static void test_load_dispatch(void)
{
    rg_doctext d;
    rg_err e;
    doctext_init(&d, NULL);
    rg_status st = loader_load(MIME_MARKDOWN, "# T\n\nx", 6, &d, &e);
    CHECK_OK(st, e);
    CHECK(d.n_blocks == 2 && d.blocks[0].kind == BLOCK_HEADING);
    doctext_free(&d);
    doctext_init(&d, NULL);
    st = loader_load("text/html; charset=utf-8", "<h2>T</h2>", 10, &d, &e);
    CHECK_OK(st, e);
    CHECK(d.n_blocks == 1 && d.blocks[0].kind == BLOCK_HEADING && d.blocks[0].level == 2);
    doctext_free(&d);
    doctext_init(&d, NULL);
    st = loader_load("application/pdf", "%PDF", 4, &d, &e);
    CHECK(st == RG_ERR_UNSUPPORTED);
    st = loader_load(MIME_TEXT, "a\0b", 3, &d, &e);
    CHECK(st == RG_ERR_UNSUPPORTED);
    doctext_free(&d);
}

static void test_doctext(void)
{
    rg_doctext d;
    rg_err e;
    doctext_init(&d, NULL);
    CHECK_OK(doctext_add_block(&d, BLOCK_PARAGRAPH, 0, 0, "  a \t\n b\xC2\xA0 c  ", 14, &e), e);
    CHECK_OK(doctext_add_block(&d, BLOCK_PARAGRAPH, 0, 0, " \n\t ", 4, &e), e); /* skipped */
    CHECK_OK(doctext_add_block(&d, BLOCK_CODE, 0, 0, "\n\n  x  y\r\n\tz\x01  \n\n", 17, &e), e);
    CHECK_OK(doctext_add_block(&d, BLOCK_HEADING, 9, 0, "H", 1, &e), e);
    CHECK(d.n_blocks == 3);
    CHECK_STR(d.text.data, "a b c\n\n  x  y\n\tz\n\nH");
    CHECK(d.blocks[2].level == 6);
    CHECK(well_formed(&d));
    doctext_free(&d);
}

int main(void)
{
    test_doctext();
    test_text();
    test_invalid_utf8();
    test_binary_and_empty();
    test_limits();
    test_markdown();
    test_html();
    test_deep_nesting();
    test_xml();
    test_sniff();
    test_load_dispatch();
    return check_finish("test_loaders");
}
