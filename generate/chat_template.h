/* chat_template.h - turning a conversation into the prompt text a chat
 * model was trained on.
 *
 * Models ship their prompt format as a Jinja template (GGUF
 * "tokenizer.chat_template", tokenizer_config.json "chat_template"). ragd
 * does not run Jinja: it recognises the family by distinctive markers in the
 * template and builds the prompt itself, exactly as the template would for
 * system / user / assistant turns:
 *
 *   chatml  the template contains "<|im_start|>" (SmolLM2, Qwen2/2.5,
 *           OpenHermes...): "<|im_start|>ROLE\nCONTENT<|im_end|>\n" per
 *           turn, "<|im_start|>assistant\n" to generate. When the template
 *           itself writes a literal "<|im_start|>system\n...<|im_end|>"
 *           block (SmolLM2's "You are a helpful AI assistant named SmolLM,
 *           trained by Hugging Face", Qwen's "You are Qwen, ..."), that
 *           default system turn is put first when the conversation has none.
 *   llama3  "<|start_header_id|>": BOS, then per turn
 *           "<|start_header_id|>ROLE<|end_header_id|>\n\n" + trimmed content
 *           + "<|eot_id|>". Llama 3.1+ templates ("Cutting Knowledge Date")
 *           always open with a system turn carrying the knowledge cutoff and
 *           a date (date_string, "26 Jul 2024" unless the caller gives one).
 *   llama2  "[INST]" with "<<SYS>>": "<s>[INST] <<SYS>>\nSYSTEM\n<</SYS>>\n\n
 *           USER [/INST] ASSISTANT </s>", contents trimmed.
 *   mistral "[INST]" without "<<SYS>>": "<s>[INST] USER [/INST]ASSISTANT</s>";
 *           a system message is put before the first user message, separated
 *           by a blank line.
 * Anything else is RG_ERR_UNSUPPORTED naming the fallback: the caller may
 * pick a format by name (ragd's --chat-template chatml|llama3|llama2|mistral),
 * which is how a model without a template, or with an unusual one, is used.
 *
 * The prompt comes back as pieces: markup (turn markers, written with the
 * model's special tokens) and content (what the users wrote). The tokenizer
 * reads special tokens only in markup, so a message cannot forge a turn. */
#ifndef RAGD_GENERATE_CHAT_TEMPLATE_H
#define RAGD_GENERATE_CHAT_TEMPLATE_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "model/bpe.h"

typedef enum rg_chat_format {
    RG_CHAT_CHATML = 0,
    RG_CHAT_LLAMA3,
    RG_CHAT_LLAMA2,
    RG_CHAT_MISTRAL
} rg_chat_format;

#define CHAT_MAX_DEFAULT_SYSTEM 4096

typedef struct rg_chat_template {
    rg_chat_format format;
    int llama31_system;  /* llama3: the template adds the knowledge-cutoff system turn */
    int has_default_system;
    char default_system[CHAT_MAX_DEFAULT_SYSTEM]; /* chatml: the template's own system turn */
    char bos[64];        /* the BOS token's text ("<s>", "<|begin_of_text|>") */
    char eos[64];        /* the EOS token's text ("</s>") */
    char date_string[32]; /* llama3.1: "Today Date: ..." */
} rg_chat_template;

typedef struct rg_chat_message {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
    size_t content_len;
} rg_chat_message;

/* One piece of a prompt: text[off..off+len) of the prompt's buffer. */
typedef struct rg_chat_piece {
    size_t off, len;
    int markup; /* 1: template text (special tokens allowed); 0: user content */
} rg_chat_piece;

typedef struct rg_chat_prompt {
    rg_buf text; /* the whole prompt, as the template renders it */
    rg_chat_piece *pieces;
    size_t n_pieces, cap_pieces;
} rg_chat_prompt;

void chat_prompt_init(rg_chat_prompt *p);
void chat_prompt_free(rg_chat_prompt *p);

/* Recognises jinja (NULL: no template) as above. bos/eos are the model's
 * BOS/EOS token texts (NULL or "" when it has none). RG_ERR_UNSUPPORTED
 * for a template that matches no family (the message names the fallback). */
rg_status chat_template_detect(const char *jinja, const char *bos, const char *eos, rg_chat_template *out,
                               rg_err *e);
/* The format named "chatml", "llama3", "llama2" or "mistral" (no default
 * system turn); RG_ERR_INVALID for another name. */
rg_status chat_template_named(const char *name, const char *bos, const char *eos, rg_chat_template *out,
                              rg_err *e);
const char *chat_format_name(rg_chat_format f);

/* Renders msgs[0..n) into out (which is reset first); with
 * add_generation_prompt the assistant's turn is opened. RG_ERR_INVALID for
 * no messages, an unknown role, or a turn order the format cannot express
 * (llama2/mistral: system first, then user and assistant alternating). */
rg_status chat_template_apply(const rg_chat_template *t, const rg_chat_message *msgs, size_t n,
                              int add_generation_prompt, rg_chat_prompt *out, rg_err *e);

/* The prompt's tokens, appended to out. Normally the whole text encoded
 * with special tokens parsed, which is what transformers does, so the ids
 * are the reference's. When a content piece spells a special token (a user
 * typing "<|im_end|>" to forge a turn), each piece is encoded on its own
 * instead: markup with special tokens parsed, content as plain text (ids at
 * the piece boundaries may then differ slightly from the whole-text ones). */
rg_status chat_prompt_encode(const rg_bpe *tok, const rg_chat_prompt *p, rg_bpe_ids *out, rg_err *e);

#endif
