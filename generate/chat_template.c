#include "generate/chat_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void chat_prompt_init(rg_chat_prompt *p)
{
    memset(p, 0, sizeof *p);
    rg_buf_init(&p->text, 0);
}

void chat_prompt_free(rg_chat_prompt *p)
{
    rg_buf_free(&p->text);
    free(p->pieces);
    memset(p, 0, sizeof *p);
}

const char *chat_format_name(rg_chat_format f)
{
    switch (f) {
    case RG_CHAT_CHATML: return "chatml";
    case RG_CHAT_LLAMA3: return "llama3";
    case RG_CHAT_LLAMA2: return "llama2";
    case RG_CHAT_MISTRAL: return "mistral";
    }
    return "unknown";
}

static void set_tokens(rg_chat_template *t, const char *bos, const char *eos)
{
    snprintf(t->bos, sizeof t->bos, "%s", bos ? bos : "");
    snprintf(t->eos, sizeof t->eos, "%s", eos ? eos : "");
    snprintf(t->date_string, sizeof t->date_string, "26 Jul 2024");
}

rg_status chat_template_named(const char *name, const char *bos, const char *eos, rg_chat_template *out,
                              rg_err *e)
{
    memset(out, 0, sizeof *out);
    set_tokens(out, bos, eos);
    if (strcmp(name, "chatml") == 0)
        out->format = RG_CHAT_CHATML;
    else if (strcmp(name, "llama3") == 0)
        out->format = RG_CHAT_LLAMA3;
    else if (strcmp(name, "llama2") == 0)
        out->format = RG_CHAT_LLAMA2;
    else if (strcmp(name, "mistral") == 0)
        out->format = RG_CHAT_MISTRAL;
    else
        return rg_error(e, RG_ERR_INVALID, "unknown chat template '%s' (chatml, llama3, llama2, mistral)", name);
    return RG_OK;
}

/* The template's own system turn: a Jinja string literal holding
 * "<|im_start|>system\n" + fixed text + "<|im_end|>". A literal that
 * continues with an expression (`'<|im_start|>system\n' + messages[0]...`)
 * is the user's system turn, not a default, and is skipped. Escapes inside
 * the literal (\n, \', \", \\) are undone; the newline may also be a real
 * one, as GGUF files store it. */
static void find_default_system(const char *jinja, rg_chat_template *t)
{
    static const char head[] = "<|im_start|>system";
    for (const char *p = strstr(jinja, head); p; p = strstr(p + 1, head)) {
        const char *q = p + sizeof head - 1;
        if (q[0] == '\n')
            q += 1;
        else if (q[0] == '\\' && q[1] == 'n')
            q += 2;
        else
            continue;
        const char *end = strstr(q, "<|im_end|>");
        if (!end || end == q)
            continue;
        size_t n = 0;
        int ok = 1;
        for (const char *c = q; c < end && ok; c++) {
            char ch = *c;
            if (ch == '\'' || ch == '"' || ch == '{' || ch == '}') {
                ok = 0;
                break;
            }
            if (ch == '\\' && c + 1 < end) {
                c++;
                ch = *c == 'n' ? '\n' : *c == 't' ? '\t' : *c;
            }
            if (n + 1 >= sizeof t->default_system) {
                ok = 0;
                break;
            }
            t->default_system[n++] = ch;
        }
        if (!ok)
            continue;
        t->default_system[n] = '\0';
        t->has_default_system = 1;
        return;
    }
}

rg_status chat_template_detect(const char *jinja, const char *bos, const char *eos, rg_chat_template *out,
                               rg_err *e)
{
    memset(out, 0, sizeof *out);
    set_tokens(out, bos, eos);
    if (!jinja || !*jinja)
        return rg_error(e, RG_ERR_UNSUPPORTED,
                        "the model has no chat template; name one with --chat-template chatml|llama3|llama2|mistral");
    if (strstr(jinja, "<|im_start|>")) {
        out->format = RG_CHAT_CHATML;
        find_default_system(jinja, out);
    } else if (strstr(jinja, "<|start_header_id|>")) {
        out->format = RG_CHAT_LLAMA3;
        out->llama31_system = strstr(jinja, "Cutting Knowledge Date") != NULL;
    } else if (strstr(jinja, "[INST]")) {
        out->format = strstr(jinja, "<<SYS>>") ? RG_CHAT_LLAMA2 : RG_CHAT_MISTRAL;
    } else {
        return rg_error(e, RG_ERR_UNSUPPORTED,
                        "the model's chat template is not one ragd recognises (ChatML, Llama 3, Llama 2, Mistral); "
                        "name one with --chat-template chatml|llama3|llama2|mistral");
    }
    return RG_OK;
}

/* ---- rendering ----------------------------------------------------------- */

static rg_status put(rg_chat_prompt *p, const char *s, size_t n, int markup, rg_err *e)
{
    if (!n)
        return RG_OK;
    /* Consecutive pieces of the same kind merge, so markup around a turn
     * is tokenized as the template would write it. */
    if (p->n_pieces && p->pieces[p->n_pieces - 1].markup == markup) {
        p->pieces[p->n_pieces - 1].len += n;
        return rg_buf_append(&p->text, s, n, e);
    }
    if (p->n_pieces == p->cap_pieces) {
        size_t cap = p->cap_pieces ? p->cap_pieces * 2 : 16;
        rg_chat_piece *np = realloc(p->pieces, cap * sizeof *np);
        if (!np)
            return rg_error(e, RG_ERR_NOMEM, "out of memory for a prompt");
        p->pieces = np;
        p->cap_pieces = cap;
    }
    p->pieces[p->n_pieces++] = (rg_chat_piece){p->text.len, n, markup};
    return rg_buf_append(&p->text, s, n, e);
}

static rg_status mark(rg_chat_prompt *p, const char *s, rg_err *e)
{
    return put(p, s, strlen(s), 1, e);
}

/* Python's str.strip() / Jinja's trim for the whitespace that matters here. */
static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static rg_status content(rg_chat_prompt *p, const char *s, size_t n, int trim, rg_err *e)
{
    if (trim) {
        while (n && is_ws(*s))
            s++, n--;
        while (n && is_ws(s[n - 1]))
            n--;
    }
    return put(p, s, n, 0, e);
}

static int role_is(const rg_chat_message *m, const char *r)
{
    return strcmp(m->role, r) == 0;
}

static rg_status render_chatml(const rg_chat_template *t, const rg_chat_message *m, size_t n, int gen,
                               rg_chat_prompt *p, rg_err *e)
{
    rg_status st = RG_OK;
    if (t->has_default_system && !role_is(&m[0], "system")) {
        if ((st = mark(p, "<|im_start|>system\n", e)) || (st = content(p, t->default_system,
                                                                         strlen(t->default_system), 0, e)) ||
            (st = mark(p, "<|im_end|>\n", e)))
            return st;
    }
    for (size_t i = 0; i < n && !st; i++) {
        if ((st = mark(p, "<|im_start|>", e)) || (st = mark(p, m[i].role, e)) || (st = mark(p, "\n", e)) ||
            (st = content(p, m[i].content, m[i].content_len, 0, e)))
            return st;
        st = mark(p, "<|im_end|>\n", e);
    }
    if (!st && gen)
        st = mark(p, "<|im_start|>assistant\n", e);
    return st;
}

static rg_status render_llama3(const rg_chat_template *t, const rg_chat_message *m, size_t n, int gen,
                               rg_chat_prompt *p, rg_err *e)
{
    rg_status st = mark(p, t->bos, e);
    size_t i = 0;
    if (!st && t->llama31_system) {
        /* 3.1+: the system turn is always there, the user's system text
         * (trimmed) after the cutoff and the date. */
        st = mark(p, "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: ",
                  e);
        if (!st)
            st = mark(p, t->date_string, e);
        if (!st)
            st = mark(p, "\n\n", e);
        if (!st && role_is(&m[0], "system")) {
            st = content(p, m[0].content, m[0].content_len, 1, e);
            i = 1;
        }
        if (!st)
            st = mark(p, "<|eot_id|>", e);
    }
    for (; i < n && !st; i++) {
        if ((st = mark(p, "<|start_header_id|>", e)) || (st = mark(p, m[i].role, e)) ||
            (st = mark(p, "<|end_header_id|>\n\n", e)) || (st = content(p, m[i].content, m[i].content_len, 1, e)))
            return st;
        st = mark(p, "<|eot_id|>", e);
    }
    if (!st && gen)
        st = mark(p, "<|start_header_id|>assistant<|end_header_id|>\n\n", e);
    return st;
}

/* Llama 2 and Mistral: an optional system turn, then user and assistant
 * alternating, starting with user (the templates raise otherwise). */
static rg_status check_alternating(const rg_chat_message *m, size_t n, size_t first, rg_err *e)
{
    for (size_t i = first; i < n; i++) {
        int want_user = (i - first) % 2 == 0;
        if (role_is(&m[i], "system"))
            return rg_error(e, RG_ERR_INVALID, "messages[%zu]: a system message may only come first", i);
        if (role_is(&m[i], "user") != want_user)
            return rg_error(e, RG_ERR_INVALID,
                            "messages[%zu]: this model's chat format needs user and assistant turns alternating, "
                            "starting with user",
                            i);
    }
    if (first == n)
        return rg_error(e, RG_ERR_INVALID, "the conversation needs a user message");
    return RG_OK;
}

static rg_status render_inst(const rg_chat_template *t, const rg_chat_message *m, size_t n, rg_chat_prompt *p,
                             rg_err *e)
{
    size_t first = role_is(&m[0], "system") ? 1 : 0;
    rg_status st = check_alternating(m, n, first, e);
    int llama2 = t->format == RG_CHAT_LLAMA2;
    if (!st && !llama2)
        st = mark(p, t->bos, e);
    for (size_t i = first; i < n && !st; i++) {
        int with_system = first && i == 1;
        if (role_is(&m[i], "user")) {
            if (llama2) {
                /* bos + '[INST] ' + ('<<SYS>>\n' + system + '\n<</SYS>>\n\n' + user).strip() + ' [/INST]' */
                if ((st = mark(p, t->bos, e)) || (st = mark(p, "[INST] ", e)))
                    return st;
                if (with_system) {
                    if ((st = mark(p, "<<SYS>>\n", e)) || (st = content(p, m[0].content, m[0].content_len, 0, e)) ||
                        (st = mark(p, "\n<</SYS>>\n\n", e)))
                        return st;
                    /* only the end of the combined text is stripped */
                    size_t len = m[i].content_len;
                    while (len && is_ws(m[i].content[len - 1]))
                        len--;
                    st = content(p, m[i].content, len, 0, e);
                } else {
                    st = content(p, m[i].content, m[i].content_len, 1, e);
                }
                if (!st)
                    st = mark(p, " [/INST]", e);
            } else {
                if ((st = mark(p, "[INST] ", e)))
                    return st;
                if (with_system && ((st = content(p, m[0].content, m[0].content_len, 0, e)) ||
                                    (st = content(p, "\n\n", 2, 0, e))))
                    return st;
                if ((st = content(p, m[i].content, m[i].content_len, 0, e)))
                    return st;
                st = mark(p, " [/INST]", e);
            }
        } else if (llama2) {
            if ((st = mark(p, " ", e)) || (st = content(p, m[i].content, m[i].content_len, 1, e)) ||
                (st = mark(p, " ", e)))
                return st;
            st = mark(p, t->eos, e);
        } else {
            if ((st = content(p, m[i].content, m[i].content_len, 0, e)))
                return st;
            st = mark(p, t->eos, e);
        }
    }
    return st;
}

rg_status chat_template_apply(const rg_chat_template *t, const rg_chat_message *msgs, size_t n,
                              int add_generation_prompt, rg_chat_prompt *out, rg_err *e)
{
    rg_buf_reset(&out->text);
    out->n_pieces = 0;
    if (!n)
        return rg_error(e, RG_ERR_INVALID, "the conversation has no messages");
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || (!role_is(&msgs[i], "system") && !role_is(&msgs[i], "user") &&
                              !role_is(&msgs[i], "assistant")))
            return rg_error(e, RG_ERR_INVALID, "messages[%zu]: role must be system, user or assistant", i);
        if (!msgs[i].content && msgs[i].content_len)
            return rg_error(e, RG_ERR_INVALID, "messages[%zu]: no content", i);
    }
    rg_status st;
    switch (t->format) {
    case RG_CHAT_CHATML: st = render_chatml(t, msgs, n, add_generation_prompt, out, e); break;
    case RG_CHAT_LLAMA3: st = render_llama3(t, msgs, n, add_generation_prompt, out, e); break;
    default: st = render_inst(t, msgs, n, out, e); break;
    }
    if (!st && !out->text.data) /* an empty prompt still reads as "" */
        st = rg_buf_append(&out->text, "", 0, e);
    return st;
}

/* Nonzero when text[0..len) holds a special token's spelling. */
static int has_special(const rg_bpe *tok, const char *text, size_t len, rg_err *e)
{
    rg_bpe_ids ids = {0};
    int found = 0;
    if (bpe_encode(tok, text, len, RG_BPE_PARSE_SPECIAL, &ids, e) != RG_OK) {
        found = -1;
    } else {
        for (size_t i = 0; i < ids.n && !found; i++)
            found = bpe_is_special(tok, ids.ids[i]);
    }
    bpe_ids_free(&ids);
    return found;
}

rg_status chat_prompt_encode(const rg_bpe *tok, const rg_chat_prompt *p, rg_bpe_ids *out, rg_err *e)
{
    int forged = 0;
    for (size_t i = 0; i < p->n_pieces && !forged; i++)
        if (!p->pieces[i].markup) {
            forged = has_special(tok, p->text.data + p->pieces[i].off, p->pieces[i].len, e);
            if (forged < 0)
                return e ? e->status : RG_ERR_INTERNAL;
        }
    if (!forged)
        return bpe_encode(tok, p->text.data ? p->text.data : "", p->text.len, RG_BPE_PARSE_SPECIAL, out, e);
    for (size_t i = 0; i < p->n_pieces; i++) {
        const rg_chat_piece *pc = &p->pieces[i];
        rg_status st = bpe_encode(tok, p->text.data + pc->off, pc->len, pc->markup ? RG_BPE_PARSE_SPECIAL : 0, out, e);
        if (st)
            return st;
    }
    return RG_OK;
}
