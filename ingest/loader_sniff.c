/* loader_sniff.c - detecting a document's type and dispatching to its loader. */
#include <string.h>

#include "ingest/loader.h"
#include "ingest/loader_common.h"
#include "ingest/text_util.h"

static const char *mime_for_extension(const char *filename)
{
    static const struct {
        const char *ext;
        const char *mime;
    } exts[] = {
        {"txt", MIME_TEXT},  {"text", MIME_TEXT},   {"log", MIME_TEXT},      {"md", MIME_MARKDOWN},
        {"markdown", MIME_MARKDOWN}, {"htm", MIME_HTML}, {"html", MIME_HTML}, {"xhtml", MIME_HTML},
        {"xml", MIME_XML},
    };
    if (!filename)
        return NULL;
    const char *base = strrchr(filename, '/');
    base = base ? base + 1 : filename;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base)
        return NULL;
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (strlen(dot + 1) == strlen(exts[i].ext) && text_starts_ci(dot + 1, strlen(dot + 1), exts[i].ext))
            return exts[i].mime;
    return NULL;
}

/* Offset of the first byte after a UTF-8 BOM and leading white space. */
static size_t content_start(const char *data, size_t len)
{
    size_t i = 0;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
        i++;
    return i;
}

static int looks_xhtml(const char *data, size_t len)
{
    size_t n = len < 4096 ? len : 4096;
    return text_find_ci(data, n, "<!doctype html") != (size_t)-1 || text_find_ci(data, n, "<html") != (size_t)-1 ||
           text_find_ci(data, n, "http://www.w3.org/1999/xhtml") != (size_t)-1;
}

const char *loader_sniff(const char *filename, const char *data, size_t len, rg_err *e)
{
    if (!data && len) {
        rg_error(e, RG_ERR_INTERNAL, "loader_sniff: no data");
        return NULL;
    }
    if (!data)
        data = "";
    const char *fmt = loader_binary_format(data, len);
    if (fmt) {
        rg_error(e, RG_ERR_UNSUPPORTED, "%s files are not supported yet", fmt);
        return NULL;
    }
    size_t cs = content_start(data, len);
    const char *head = data + cs;
    size_t hl = len - cs;
    const char *mime = mime_for_extension(filename);
    if (!mime) {
        if (text_starts_ci(head, hl, "<!doctype html") || text_starts_ci(head, hl, "<html") ||
            (text_starts_ci(head, hl, "<!--") && looks_xhtml(head, hl)))
            mime = MIME_HTML;
        else if (text_starts_ci(head, hl, "<?xml"))
            mime = looks_xhtml(head, hl) ? MIME_HTML : MIME_XML;
        else
            mime = MIME_TEXT;
    } else if (strcmp(mime, MIME_XML) == 0 && looks_xhtml(head, hl)) {
        mime = MIME_HTML;
    }
    /* Confirm that it is text. Markup may declare a legacy encoding, so
     * only for it is invalid UTF-8 no sign of binary data. */
    int markup = strcmp(mime, MIME_HTML) == 0 || strcmp(mime, MIME_XML) == 0;
    char enc[64];
    int strict = !(markup && loader_declared_charset(data, len, strcmp(mime, MIME_HTML) == 0, enc, sizeof enc) &&
                   !loader_charset_is_utf8(enc));
    if (loader_check_text(data, len, strict, e) != RG_OK)
        return NULL;
    return mime;
}

/* Compares a MIME type ignoring case and any ";parameters". */
static int mime_is(const char *mime, const char *want)
{
    size_t n = strcspn(mime, "; \t");
    return n == strlen(want) && text_starts_ci(mime, n, want);
}

rg_status loader_load(const char *mime, const char *data, size_t len, rg_doctext *out, rg_err *e)
{
    if (!out || (!data && len))
        return rg_error(e, RG_ERR_INTERNAL, "loader_load: bad arguments");
    if (!data)
        data = "";
    if (!mime)
        return rg_error(e, RG_ERR_UNSUPPORTED, "no media type given");
    if (mime_is(mime, MIME_TEXT))
        return loader_text(data, len, out, e);
    if (mime_is(mime, MIME_MARKDOWN) || mime_is(mime, "text/x-markdown"))
        return loader_markdown(data, len, out, e);
    if (mime_is(mime, MIME_HTML) || mime_is(mime, "application/xhtml+xml"))
        return loader_html(data, len, out, e);
    if (mime_is(mime, MIME_XML) || mime_is(mime, "text/xml"))
        return loader_xml(data, len, out, e);
    return rg_error(e, RG_ERR_UNSUPPORTED, "media type %.100s is not supported", mime);
}
