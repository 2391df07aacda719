/* loader_html.c - HTML, XHTML and generic XML through libxml2.
 *
 * Safety: the parsers run with NONET and without NOENT/DTDLOAD/DTDATTR, so
 * no external entity, DTD or network resource is ever loaded; references
 * to external entities are left out of the text, and internal entities are
 * substituted only when their value is plain text. The tree is walked
 * iteratively (parent pointers, no recursion), and elements nested deeper
 * than limits.max_depth are flattened into their ancestor's block. libxml2
 * itself stops building the tree past 256 levels; when it gives up on a
 * document like that, a flat tag-stripping pass extracts the text instead,
 * so deep content is never silently lost.
 *
 * HTML: h1-h6 are headings, p/div/... paragraphs, li list items (level =
 * list nesting), tr table rows (cells joined by " | "), pre code,
 * blockquote quotes; script, style, noscript, template, nav, aside, form,
 * svg and other non-content elements are dropped, as are header/footer
 * outside article/main/section, elements with the hidden attribute,
 * aria-hidden="true", or a navigation/banner/contentinfo/search role.
 * <title> becomes the document title (else the first h1).
 *
 * Generic XML: every element whose content is only text (or mixed text
 * and inline elements) becomes one paragraph. XML whose root is <html>
 * or in the XHTML namespace is read with the HTML rules. */
#include <libxml/HTMLparser.h>
#include <libxml/entities.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "ingest/loader.h"
#include "ingest/loader_common.h"
#include "ingest/text_util.h"

enum tag_type {
    T_INLINE,
    T_BLOCK,
    T_CONTENT, /* article, main, section: block; header/footer inside are kept */
    T_HEADER,  /* header, footer: dropped outside content */
    T_DROP,
    T_HEADING,
    T_LIST,
    T_LI,
    T_QUOTE,
    T_PRE,
    T_TR,
    T_CELL,
    T_TITLE,
    T_BR,
    T_HR,
    T_EMPTY, /* img, area, ...: no text */
    T_RAWTEXT /* for the flat pass: content is not markup */
};

static const struct {
    const char *name;
    unsigned char type;
} html_tags[] = {
    {"a", T_INLINE},         {"address", T_BLOCK},  {"area", T_EMPTY},       {"article", T_CONTENT},
    {"aside", T_DROP},       {"audio", T_DROP},     {"blockquote", T_QUOTE}, {"body", T_BLOCK},
    {"br", T_BR},            {"button", T_DROP},    {"canvas", T_DROP},      {"caption", T_BLOCK},
    {"center", T_BLOCK},     {"dd", T_BLOCK},       {"details", T_BLOCK},    {"dialog", T_BLOCK},
    {"dir", T_LIST},         {"div", T_BLOCK},      {"dl", T_BLOCK},         {"dt", T_BLOCK},
    {"embed", T_DROP},       {"fieldset", T_BLOCK}, {"figcaption", T_BLOCK}, {"figure", T_BLOCK},
    {"footer", T_HEADER},    {"form", T_DROP},      {"frameset", T_DROP},    {"h1", T_HEADING},
    {"h2", T_HEADING},       {"h3", T_HEADING},     {"h4", T_HEADING},       {"h5", T_HEADING},
    {"h6", T_HEADING},       {"head", T_BLOCK},     {"header", T_HEADER},    {"hgroup", T_BLOCK},
    {"hr", T_HR},            {"html", T_BLOCK},     {"iframe", T_DROP},      {"img", T_EMPTY},
    {"input", T_DROP},       {"legend", T_BLOCK},   {"li", T_LI},            {"link", T_EMPTY},
    {"listing", T_PRE},      {"main", T_CONTENT},   {"map", T_DROP},         {"math", T_DROP},
    {"menu", T_LIST},        {"meta", T_EMPTY},     {"nav", T_DROP},         {"noframes", T_DROP},
    {"noscript", T_DROP},    {"object", T_DROP},    {"ol", T_LIST},          {"p", T_BLOCK},
    {"plaintext", T_PRE},    {"pre", T_PRE},        {"script", T_DROP},      {"section", T_CONTENT},
    {"select", T_DROP},      {"style", T_DROP},     {"summary", T_BLOCK},    {"svg", T_DROP},
    {"table", T_BLOCK},      {"tbody", T_BLOCK},    {"td", T_CELL},          {"template", T_DROP},
    {"textarea", T_DROP},    {"tfoot", T_BLOCK},    {"th", T_CELL},          {"thead", T_BLOCK},
    {"title", T_TITLE},      {"tr", T_TR},          {"ul", T_LIST},          {"video", T_DROP},
    {"xmp", T_PRE},
};

static int ascii_ieq(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y - 'A' + 'a');
        if (x != y)
            return 0;
        if (!x)
            return 1;
    }
}

static int html_tag_type(const char *name)
{
    size_t lo = 0, hi = sizeof html_tags / sizeof html_tags[0];
    char low[16];
    size_t k = 0;
    for (; name[k] && k < sizeof low - 1; k++)
        low[k] = (name[k] >= 'A' && name[k] <= 'Z') ? (char)(name[k] - 'A' + 'a') : name[k];
    if (name[k])
        return T_INLINE;
    low[k] = '\0';
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(low, html_tags[mid].name);
        if (c == 0)
            return html_tags[mid].type;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return T_INLINE;
}

static const char *attr_value(const xmlAttr *a)
{
    if (a->children && (a->children->type == XML_TEXT_NODE) && a->children->content)
        return (const char *)a->children->content;
    return "";
}

/* hidden, aria-hidden="true", or a navigation-like role. */
static int html_hidden(const xmlNode *node)
{
    for (const xmlAttr *a = node->properties; a; a = a->next) {
        const char *name = (const char *)a->name;
        if (ascii_ieq(name, "hidden"))
            return 1;
        if (ascii_ieq(name, "aria-hidden") && ascii_ieq(attr_value(a), "true"))
            return 1;
        if (ascii_ieq(name, "role")) {
            const char *v = attr_value(a);
            if (ascii_ieq(v, "navigation") || ascii_ieq(v, "banner") || ascii_ieq(v, "contentinfo") ||
                ascii_ieq(v, "search"))
                return 1;
        }
    }
    return 0;
}

/* ---- the tree walk ---------------------------------------------------- */

typedef struct wframe {
    const xmlNode *node;
    rg_block_kind kind;
    int level;
    int list_depth;
    int pre;     /* inside pre: text is verbatim, everything is inline */
    size_t row;  /* 1 + index of the enclosing tr frame, 0 outside rows */
    int content; /* inside article/main/section */
    int cells;   /* tr frames: cells seen so far */
    int mixed;   /* generic XML: the element has text of its own */
    int block;   /* flushes its text on exit */
} wframe;

typedef struct walker {
    rg_doctext *d;
    rg_err *e;
    xmlDoc *doc;
    int html;
    wframe *st;
    size_t n, cap;
    int depth, max_depth;
    rg_buf cur; /* text of the block being collected */
    int have_title;
    rg_status status;
} walker;

static void w_append(walker *w, const char *s, size_t n)
{
    if (w->status || n == 0)
        return;
    w->status = rg_buf_append(&w->cur, s, n, w->e);
    if (w->status == RG_ERR_TOO_LARGE)
        rg_error(w->e, RG_ERR_TOO_LARGE, "the extracted text exceeds the limit of %zu bytes",
                 w->d->limits.max_text_bytes);
}

static void w_space(walker *w)
{
    if (w->cur.len && w->cur.data[w->cur.len - 1] != ' ')
        w_append(w, " ", 1);
}

static void w_flush(walker *w, const wframe *f)
{
    if (w->status || w->cur.len == 0)
        return;
    w->status = doctext_add_block(w->d, f->kind, f->level, 0, w->cur.data, w->cur.len, w->e);
    rg_buf_reset(&w->cur);
}

static int w_push(walker *w, const wframe *f)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        wframe *nf = realloc(w->st, cap * sizeof *nf);
        if (!nf) {
            w->status = rg_error(w->e, RG_ERR_NOMEM, "out of memory walking the document");
            return 0;
        }
        w->st = nf;
        w->cap = cap;
    }
    w->st[w->n++] = *f;
    return 1;
}

static void w_title(walker *w, const xmlNode *node)
{
    rg_buf t;
    rg_buf_init(&t, 16384);
    for (const xmlNode *c = node->children; c; c = c->next)
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content)
            if (rg_buf_append_str(&t, (const char *)c->content, NULL))
                break;
    if (t.len) {
        w->status = loader_set_title(w->d, t.data, t.len, w->e);
        w->have_title = w->d->title != NULL;
    }
    rg_buf_free(&t);
}

static int has_own_text(const xmlNode *node)
{
    for (const xmlNode *c = node->children; c; c = c->next) {
        if (c->type == XML_ENTITY_REF_NODE)
            return 1;
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content)
            for (const xmlChar *p = c->content; *p; p++)
                if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
                    return 1;
    }
    return 0;
}

/* Returns nonzero when the walk should descend into node's children; the
 * walk then calls w_exit for node after them. */
static int w_enter(walker *w, const xmlNode *node)
{
    switch (node->type) {
    case XML_DOCUMENT_NODE:
    case XML_HTML_DOCUMENT_NODE:
        return 1;
    case XML_TEXT_NODE:
    case XML_CDATA_SECTION_NODE:
        if (node->content)
            w_append(w, (const char *)node->content, strlen((const char *)node->content));
        return 0;
    case XML_ENTITY_REF_NODE: {
        /* Internal entities with a plain-text value only: never external
         * ones, never markup (which could nest references exponentially). */
        xmlEntityPtr ent = xmlGetDocEntity(w->doc, node->name);
        if (ent && ent->etype == XML_INTERNAL_GENERAL_ENTITY && ent->content &&
            !strpbrk((const char *)ent->content, "<&"))
            w_append(w, (const char *)ent->content, strlen((const char *)ent->content));
        return 0;
    }
    case XML_ELEMENT_NODE:
        break;
    default:
        return 0;
    }
    const wframe *top = &w->st[w->n - 1];
    int type = T_INLINE;
    if (w->html) {
        type = html_tag_type((const char *)node->name);
        if (type == T_DROP || type == T_EMPTY || (type == T_HEADER && !top->content) || html_hidden(node))
            return 0;
        if (type == T_TITLE) {
            if (!w->have_title)
                w_title(w, node);
            return 0;
        }
        if (type == T_BR) {
            w_append(w, "\n", 1);
            return 0;
        }
        if (type == T_HR) {
            if (!top->pre && !top->row)
                w_flush(w, top);
            return 0;
        }
    }
    w->depth++;
    if (w->depth > w->max_depth) {
        /* Flattened: its text joins the nearest kept ancestor's block. */
        if (!w->html || type != T_INLINE)
            w_space(w);
        return 1;
    }
    wframe f = *top;
    f.node = node;
    f.block = 0;
    if (!w->html) {
        if (top->mixed)
            return 1; /* inline in mixed content */
        w_flush(w, top);
        f.kind = BLOCK_PARAGRAPH;
        f.level = 0;
        f.mixed = has_own_text(node);
        f.block = 1;
        return w_push(w, &f);
    }
    if (type == T_INLINE)
        return 1;
    if (top->pre || top->row) {
        /* Inside a row or pre everything is inline; cells are separated. */
        if (type == T_CELL && top->row) {
            wframe *row = &w->st[top->row - 1];
            if (row->cells++ > 0)
                w_append(w, " | ", 3);
        } else if (!top->pre) {
            w_space(w);
        }
        return w_push(w, &f);
    }
    w_flush(w, top);
    f.block = 1;
    switch (type) {
    case T_HEADING:
        f.kind = BLOCK_HEADING;
        f.level = node->name[1] - '0';
        break;
    case T_LIST:
        f.list_depth++;
        break;
    case T_LI:
        f.kind = BLOCK_LIST_ITEM;
        f.level = top->list_depth > 0 ? top->list_depth : 1;
        break;
    case T_QUOTE:
        f.kind = BLOCK_QUOTE;
        f.level = 0;
        break;
    case T_PRE:
        f.kind = BLOCK_CODE;
        f.level = 0;
        f.pre = 1;
        break;
    case T_TR:
        f.kind = BLOCK_TABLE_ROW;
        f.level = 0;
        f.cells = 0;
        f.row = w->n + 1;
        break;
    case T_CONTENT:
        f.content = 1;
        break;
    default: /* blocks inherit their container's kind (a p inside li is the item) */
        break;
    }
    return w_push(w, &f);
}

static void w_exit(walker *w, const xmlNode *node)
{
    if (node->type != XML_ELEMENT_NODE) {
        if (node->type == XML_DOCUMENT_NODE || node->type == XML_HTML_DOCUMENT_NODE)
            w_flush(w, &w->st[0]);
        return;
    }
    if (w->depth > w->max_depth) {
        if (!w->html || html_tag_type((const char *)node->name) != T_INLINE)
            w_space(w);
    } else if (w->n > 1 && w->st[w->n - 1].node == node) {
        wframe f = w->st[--w->n];
        if (f.block)
            w_flush(w, &f);
        else if (!f.pre)
            w_space(w);
    }
    w->depth--;
}

static rg_status walk(walker *w, xmlNode *root)
{
    wframe f0;
    memset(&f0, 0, sizeof f0);
    f0.kind = BLOCK_PARAGRAPH;
    f0.block = 1;
    if (!w_push(w, &f0))
        return w->status;
    xmlNode *n = root;
    while (n && !w->status) {
        int desc = w_enter(w, n);
        if (w->status)
            break;
        if (desc && n->children && n->type != XML_ENTITY_REF_NODE) {
            n = n->children;
            continue;
        }
        if (desc)
            w_exit(w, n);
        while (n != root && !n->next && !w->status) {
            n = n->parent;
            w_exit(w, n);
        }
        if (n == root)
            break;
        n = n->next;
    }
    return w->status;
}

/* ---- the flat fallback ------------------------------------------------ */

static size_t find_ci(const char *s, size_t n, size_t from, const char *needle)
{
    if (from >= n)
        return (size_t)-1;
    size_t at = text_find_ci(s + from, n - from, needle);
    return at == (size_t)-1 ? at : from + at;
}

/* Strips tags from s[0..n) (valid UTF-8): markup boundaries (every tag in
 * XML, block-level tags in HTML) end paragraphs, script/style content and
 * comments are dropped. No nesting is tracked, so no depth matters. */
static rg_status flat_extract(rg_doctext *d, const char *s, size_t n, int html, rg_err *e)
{
    rg_buf cur;
    rg_buf_init(&cur, d->limits.max_text_bytes);
    rg_status st = RG_OK;
    rg_block_kind kind = BLOCK_PARAGRAPH;
    int level = 0;
    size_t i = 0;
    while (i < n && !st) {
        if (s[i] == '&') {
            size_t used = 0;
            st = text_append_char_ref(s + i, n - i < 40 ? n - i : 40, &used, &cur, e);
            if (!st && !used)
                st = rg_buf_append_char(&cur, '&', e);
            i += used ? used : 1;
            continue;
        }
        if (s[i] != '<') {
            size_t j = i;
            while (j < n && s[j] != '<' && s[j] != '&')
                j++;
            st = rg_buf_append(&cur, s + i, j - i, e);
            i = j;
            continue;
        }
        size_t end;
        if (text_starts_ci(s + i, n - i, "<!--")) {
            end = find_ci(s, n, i + 4, "-->");
            i = end == (size_t)-1 ? n : end + 3;
            continue;
        }
        if (text_starts_ci(s + i, n - i, "<![CDATA[")) {
            end = find_ci(s, n, i + 9, "]]>");
            if (end == (size_t)-1)
                end = n;
            st = rg_buf_append(&cur, s + i + 9, end - i - 9, e);
            i = end == n ? n : end + 3;
            continue;
        }
        if (i + 1 < n && (s[i + 1] == '!' || s[i + 1] == '?')) {
            const char *gt = memchr(s + i, '>', n - i);
            const char *br = memchr(s + i, '[', gt ? (size_t)(gt - (s + i)) : n - i);
            if (br && text_starts_ci(s + i, n - i, "<!doctype")) {
                end = find_ci(s, n, (size_t)(br - s), "]>");
                i = end == (size_t)-1 ? n : end + 2;
            } else {
                i = gt ? (size_t)(gt - s) + 1 : n;
            }
            continue;
        }
        size_t j = i + 1;
        int closing = j < n && s[j] == '/';
        if (closing)
            j++;
        size_t ns = j;
        while (j < n && j - ns < 32 &&
               ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z') || (j > ns && s[j] >= '0' && s[j] <= '9') ||
                (j > ns && (s[j] == '-' || s[j] == ':' || s[j] == '_'))))
            j++;
        if (j == ns) {
            st = rg_buf_append_char(&cur, '<', e);
            i++;
            continue;
        }
        char name[33];
        memcpy(name, s + ns, j - ns);
        name[j - ns] = '\0';
        const char *gt = memchr(s + j, '>', n - j);
        size_t after = gt ? (size_t)(gt - s) + 1 : n;
        int type = html ? html_tag_type(name) : T_BLOCK;
        if (html && !closing &&
            (ascii_ieq(name, "script") || ascii_ieq(name, "style") || ascii_ieq(name, "title") ||
             ascii_ieq(name, "textarea") || ascii_ieq(name, "template") || ascii_ieq(name, "noscript"))) {
            char close[40];
            snprintf(close, sizeof close, "</%s", name);
            end = find_ci(s, n, after, close);
            if (ascii_ieq(name, "title") && !d->title && end != (size_t)-1)
                st = loader_set_title(d, s + after, end - after, e);
            i = end == (size_t)-1 ? n : end;
            continue;
        }
        i = after;
        if (type == T_BR) {
            st = rg_buf_append_char(&cur, '\n', e);
        } else if (type != T_INLINE) {
            if (cur.len)
                st = doctext_add_block(d, kind, level, 0, cur.data, cur.len, e);
            rg_buf_reset(&cur);
            kind = BLOCK_PARAGRAPH;
            level = 0;
            if (type == T_HEADING && !closing) {
                kind = BLOCK_HEADING;
                level = name[1] - '0';
            }
        }
    }
    if (!st && cur.len)
        st = doctext_add_block(d, kind, level, 0, cur.data, cur.len, e);
    if (st == RG_ERR_TOO_LARGE)
        st = rg_error(e, st, "the extracted text exceeds the limit of %zu bytes", d->limits.max_text_bytes);
    rg_buf_free(&cur);
    return st;
}

/* ---- entry points ----------------------------------------------------- */

static int is_xhtml_root(const xmlNode *root)
{
    if (!root)
        return 0;
    if (root->ns && root->ns->href && strcmp((const char *)root->ns->href, "http://www.w3.org/1999/xhtml") == 0)
        return 1;
    return ascii_ieq((const char *)root->name, "html");
}

static rg_status markup_load(const char *data, size_t len, rg_doctext *out, rg_err *e, int html)
{
    if (len > INT_MAX)
        return rg_error(e, RG_ERR_TOO_LARGE, "the document is too large to parse (%zu bytes)", len);
    xmlInitParser(); /* idempotent; main should also call it once before starting threads */
    char enc[64];
    int foreign = loader_declared_charset(data, len, html, enc, sizeof enc) && !loader_charset_is_utf8(enc);
    int utf16 = loader_utf16_bom(data, len) != 0;
    rg_status st = loader_check_text(data, len, !foreign && !utf16, e);
    if (st)
        return st;

    rg_buf buf;
    rg_buf_init(&buf, 0);
    const char *src = data;
    size_t srclen = len;
    const char *penc = NULL;
    if (!foreign && !utf16) {
        /* Parse as UTF-8, with invalid sequences already made U+FFFD. */
        if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) {
            src += 3;
            srclen -= 3;
        }
        st = rg_buf_reserve(&buf, srclen, e);
        if (!st)
            st = utf8_sanitize(src, srclen, &buf, NULL, e);
        if (st || buf.len > INT_MAX) {
            rg_buf_free(&buf);
            return st ? st : rg_error(e, RG_ERR_TOO_LARGE, "the document is too large to parse");
        }
        src = buf.data ? buf.data : "";
        srclen = buf.len;
        penc = "UTF-8";
    }

    xmlDocPtr doc = NULL;
    int halted = 0;
    if (html) {
        htmlParserCtxtPtr ctxt = htmlNewParserCtxt();
        if (!ctxt) {
            rg_buf_free(&buf);
            return rg_error(e, RG_ERR_NOMEM, "out of memory creating the HTML parser");
        }
        doc = htmlCtxtReadMemory(ctxt, src, (int)srclen, NULL, penc,
                                 HTML_PARSE_NONET | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_RECOVER);
        halted = ctxt->lastError.code == XML_ERR_INTERNAL_ERROR;
        htmlFreeParserCtxt(ctxt);
    } else {
        xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
        if (!ctxt) {
            rg_buf_free(&buf);
            return rg_error(e, RG_ERR_NOMEM, "out of memory creating the XML parser");
        }
        /* Deliberately no XML_PARSE_NOENT, DTDLOAD or DTDATTR: external
         * entities and DTDs are never fetched. */
        doc = xmlCtxtReadMemory(ctxt, src, (int)srclen, NULL, penc,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_RECOVER);
        halted = ctxt->lastError.code == XML_ERR_INTERNAL_ERROR;
        xmlFreeParserCtxt(ctxt);
    }

    int html_rules = html;
    if (doc && !halted && xmlDocGetRootElement(doc)) {
        walker w;
        memset(&w, 0, sizeof w);
        w.d = out;
        w.e = e;
        w.doc = doc;
        w.html = html || is_xhtml_root(xmlDocGetRootElement(doc));
        html_rules = w.html;
        w.max_depth = out->limits.max_depth;
        rg_buf_init(&w.cur, out->limits.max_text_bytes);
        st = walk(&w, (xmlNode *)doc);
        rg_buf_free(&w.cur);
        free(w.st);
    } else {
        /* libxml2 gave up (nesting past its limit, or no markup at all):
         * fall back to stripping tags from the UTF-8 text. */
        if (foreign || utf16) {
            rg_buf_reset(&buf);
            st = utf16 ? loader_decode_text(data, len, &buf, e) : utf8_sanitize(data, len, &buf, NULL, e);
        }
        if (!st)
            st = flat_extract(out, buf.data ? buf.data : "", buf.len, html, e);
    }
    xmlFreeDoc(doc);
    rg_buf_free(&buf);
    if (st)
        return st;
    return loader_finish(out, html_rules, e);
}

rg_status loader_html(const char *data, size_t len, rg_doctext *out, rg_err *e)
{
    return markup_load(data, len, out, e, 1);
}

rg_status loader_xml(const char *data, size_t len, rg_doctext *out, rg_err *e)
{
    return markup_load(data, len, out, e, 0);
}
