/* fuzz_config_json.c - a Hugging Face config.json from outside, through the
 * BERT and the Llama-family readers (model/bert_config.c,
 * model/llama_config.c). A config that parses must also validate: the
 * readers promise sizes the loaders can multiply without overflow. */
#include "tests/fuzz/fuzz.h"

#include "model/bert_config.h"
#include "model/llama_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rg_err e = {0};
    rg_bert_config bc;
    rg_status st = bert_config_parse((const char *)data, size, "config.json", &bc, &e);
    FUZZ_CHECK(st == RG_OK || e.msg[0], "bert_config_parse failed (status %d) without a message", (int)st);
    llama_config lc;
    st = llama_config_parse_hf((const char *)data, size, "config.json", &lc, &e);
    FUZZ_CHECK(st == RG_OK || e.msg[0], "llama_config_parse_hf failed (status %d) without a message", (int)st);
    if (st == RG_OK)
        FUZZ_CHECK(llama_config_validate(&lc, "config.json", &e) == RG_OK, "parsed but invalid: %s", e.msg);
    return 0;
}
