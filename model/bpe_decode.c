/* bpe_decode.c - token ids back to text, whole or one token at a time.
 *
 * Every id's bytes are precomputed at load (bpe_finish). Decoding joins
 * them, reads invalid UTF-8 as U+FFFD (one per maximal invalid subpart, as
 * Rust's from_utf8_lossy in the library) and, for SentencePiece, drops the
 * space the dummy prefix put in front of the text as the model's decoder
 * does: Strip takes one leading space of the joined text, Metaspace drops
 * every U+2581 of the first token it is given (skipped specials are never
 * given to it). The streaming decoder
 * holds back an incomplete character so a client never sees half of one. */
#include <stdlib.h>
#include <string.h>

#include "model/bpe_impl.h"

static const char REPLACEMENT[] = "\xEF\xBF\xBD";
static const char META_UTF8[] = "\xE2\x96\x81"; /* U+2581 */

static rg_status check_id(const rg_bpe *t, int32_t id, rg_err *e)
{
    if (id < 0 || (size_t)id >= t->n_ids)
        return rg_error(e, RG_ERR_INVALID, "token id %d is outside the vocabulary (0..%zu)", id, t->n_ids - 1);
    return RG_OK;
}

/* Appends the valid prefix of s[0..len) to out, invalid parts as U+FFFD.
 * When hold is not NULL an incomplete character at the very end is not
 * appended: its length goes to *hold. */
static rg_status append_lossy(const char *s, size_t len, rg_buf *out, size_t *hold, rg_err *e)
{
    size_t i = 0, run = 0;
    rg_status st;
    if (hold)
        *hold = 0;
    while (i < len) {
        uint32_t cp;
        size_t bad, n = bpe_utf8_next((const unsigned char *)s + i, len - i, &cp, &bad);
        if (n) {
            i += n;
            continue;
        }
        if (hold && i + bad == len && bad < 4 && (unsigned char)s[i] >= 0xC2 && (unsigned char)s[i] <= 0xF4) {
            /* a character that the next token may complete */
            *hold = bad;
            len = i;
            break;
        }
        if ((st = rg_buf_append(out, s + run, i - run, e)) || (st = rg_buf_append(out, REPLACEMENT, 3, e)))
            return st;
        i += bad;
        run = i;
    }
    return rg_buf_append(out, s + run, (hold ? len : i) - run, e);
}

/* Appends what token id decodes to when it is the first token the decoder
 * sees. The Metaspace decoder drops every U+2581 of that token instead of
 * making it a space (the library's rule: its prefix, and with it any
 * U+2581 run a text began with); other tokens, and every token under other
 * decoders, are their precomputed bytes. */
static rg_status append_token(const rg_bpe *t, int32_t id, int first, rg_buf *out, rg_err *e)
{
    size_t len, plen;
    const char *b = bpe_token_bytes(t, id, &len);
    if (!b)
        return RG_OK;
    const char *piece = first && t->dec_meta_first ? bpe_token_piece(t, id, &plen) : NULL;
    int has_meta = 0;
    for (size_t i = 0; piece && !has_meta && i + 3 <= plen; i++)
        has_meta = !memcmp(piece + i, META_UTF8, 3);
    if (!has_meta)
        return rg_buf_append(out, b, len, e); /* byte tokens have no U+2581 and take this path */
    for (size_t i = 0; i < plen;) {
        if (i + 3 <= plen && !memcmp(piece + i, META_UTF8, 3)) {
            i += 3;
            continue;
        }
        rg_status st = rg_buf_append_char(out, piece[i++], e);
        if (st)
            return st;
    }
    return RG_OK;
}

rg_status bpe_decode(const rg_bpe *t, const int32_t *ids, size_t n, int skip_special, rg_buf *out, rg_err *e)
{
    rg_buf raw;
    rg_buf_init(&raw, out->max);
    rg_status st = RG_OK;
    size_t fed = 0; /* tokens the decoder has seen (skipped ones never reach it) */
    for (size_t i = 0; i < n && !st; i++) {
        if ((st = check_id(t, ids[i], e)))
            break;
        if (skip_special && t->special[ids[i]])
            continue;
        st = append_token(t, ids[i], fed++ == 0, &raw, e);
    }
    if (!st) {
        const char *s = raw.data ? raw.data : "";
        size_t len = raw.len;
        if (t->dec_strip_space && len && s[0] == ' ') {
            s++;
            len--;
        }
        st = append_lossy(s, len, out, NULL, e);
    }
    rg_buf_free(&raw);
    return st;
}

void bpe_stream_init(rg_bpe_stream *s, int skip_special)
{
    memset(s, 0, sizeof *s);
    s->skip_special = (uint8_t)(skip_special != 0);
}

/* The bytes of one token through the stream: the Strip decoder's space
 * dropped, an open character held back. */
static rg_status stream_bytes(const rg_bpe *t, rg_bpe_stream *s, const char *b, size_t len, rg_buf *out, rg_err *e)
{
    rg_status st;
    if (!b || len == 0)
        return RG_OK;
    if (t->dec_strip_space && !s->started && s->n_pending == 0 && b[0] == ' ') {
        b++;
        len--;
    }
    if (len == 0) {
        s->started = 1;
        return RG_OK;
    }
    /* pending bytes and the new ones, emitted up to a character still open */
    char tmp[4 + 256];
    const char *src = b;
    size_t n = len;
    char *joined = NULL;
    if (s->n_pending) {
        if (s->n_pending + len <= sizeof tmp) {
            joined = tmp;
        } else if (!(joined = malloc(s->n_pending + len))) {
            return rg_error(e, RG_ERR_NOMEM, "out of memory while decoding");
        }
        memcpy(joined, s->pending, s->n_pending);
        memcpy(joined + s->n_pending, b, len);
        src = joined;
        n = s->n_pending + len;
    }
    size_t hold = 0;
    size_t before = out->len;
    st = append_lossy(src, n, out, &hold, e);
    if (!st) {
        memcpy(s->pending, src + n - hold, hold);
        s->n_pending = (uint8_t)hold;
        if (out->len > before)
            s->started = 1;
    }
    if (joined && joined != tmp)
        free(joined);
    return st;
}

rg_status bpe_stream_step(const rg_bpe *t, rg_bpe_stream *s, int32_t id, rg_buf *out, rg_err *e)
{
    rg_status st = check_id(t, id, e);
    if (st)
        return st;
    if (s->skip_special && t->special[id])
        return RG_OK;
    int first = !s->fed;
    s->fed = 1;
    if (!(first && t->dec_meta_first)) {
        size_t len;
        const char *b = bpe_token_bytes(t, id, &len);
        return stream_bytes(t, s, b, len, out, e);
    }
    rg_buf tok;
    rg_buf_init(&tok, 0);
    if ((st = append_token(t, id, first, &tok, e))) {
        rg_buf_free(&tok);
        return st;
    }
    st = stream_bytes(t, s, tok.data, tok.len, out, e);
    rg_buf_free(&tok);
    return st;
}

rg_status bpe_stream_finish(const rg_bpe *t, rg_bpe_stream *s, rg_buf *out, rg_err *e)
{
    (void)t;
    rg_status st = RG_OK;
    if (s->n_pending)
        st = append_lossy((const char *)s->pending, s->n_pending, out, NULL, e);
    s->n_pending = 0;
    return st;
}
