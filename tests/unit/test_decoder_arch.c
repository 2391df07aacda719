/* test_decoder_arch.c - each architecture feature of the Hugging Face path
 * against transformers, on small random-weight models.
 *
 * The machines that run the tests hold one real decoder (SmolLM2: Llama,
 * no bias, no RoPE scaling, tied output), which test_decoder checks against
 * llama.cpp and transformers. The rest of what the decoder claims is checked
 * here: Qwen2's QKV biases, Qwen3's per-head Q/K norms, Llama 3 and linear
 * RoPE scaling, RoPE bases,
 * grouped-query attention (2:1, 4:1) and plain multi-head, an explicit
 * head_dim wider than hidden/heads (Mistral), untied outputs, F16/BF16
 * safetensors (F32: test_decoder's directory), and config.json both as
 * published checkpoints write it and as transformers 5's save_pretrained
 * does (rope_parameters).
 *
 * tests/fixtures/arch/ holds the directories and tests/fixtures/
 * arch_golden.jsonl what transformers (float32, eager attention) computes
 * from them, both written by scripts/gen_arch_golden.py; the SHA-256 of
 * each directory's two files is checked first. Required, with f32 weights
 * and an f32 cache: each prompt's full logit vector within ARCH_MAX_REL, and
 * 8 greedy tokens equal (a near-tie excused, printed). The fixture also
 * records how far the logits move when the feature is taken away (the
 * biases zeroed, the scaling dropped, the base doubled, the output tied):
 * each must exceed the bound ARCH_POWER times over, so a test that cannot
 * tell the feature from its absence fails. Then the same directories as a
 * user loads them (weights kept in their stored type, an f16 cache) must
 * pick the same first token, within ARCH_STORED_REL.
 *
 * The GGUF side: the random-weight seeds of tests/fuzz/seeds/gguf (a Llama
 * with mixed legacy and float matrices, a Qwen2 with biases and NEOX
 * rotation, a Llama with k-quants, Llama 3.1's rope_freqs and linear RoPE
 * scaling, a Qwen3) against llama.cpp
 * (tests/fixtures/gguf_arch_golden.jsonl, scripts/gen_gguf_arch_golden.py),
 * loaded as a user loads a GGUF, f16 cache: the 1e-2 on the logits
 * and llama.cpp's greedy tokens, a near-tie excused.
 *
 * Also here: config.json fields that change the computation, each read or
 * refused (test_configs), and checkpoints holding tensors the decoder would
 * not read refused at load (test_unused_tensors). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "jsonl_lines.h"
#include "llama_golden.h"
#include "hf_golden.h"
#include "common/buf.h"
#include "common/fs.h"
#include "model/decoder.h"
#include "model/llama_config.h"

#define ARCH_GOLDEN "tests/fixtures/arch_golden.jsonl"
#define ARCH_DIR "tests/fixtures/arch"
/* float32 against float32 in another order: transformers' own
 * float32-to-float64 spread on these prompts is 2e-7 to 1.1e-6 (printed);
 * ragd measured within a few times that when written. */
#define ARCH_MAX_REL 1e-5
/* logits here are of magnitude ~1-5 */
#define ARCH_MAX_STEP_ABS 1e-4
#define ARCH_NEAR_TIE 1e-3
/* every mutation must move the logits this many times the bound */
#define ARCH_POWER 1000.0
/* weights in their stored type (f16/bf16 rows; the activations stay f32
 * for a Hugging Face directory) and an f16 cache: the centered relative
 * error against transformers, the 1e-2 (measured at most 1.5e-3
 * when written) */
#define ARCH_STORED_REL 1e-2
#define ARCH_MODELS 7

/* The GGUF seeds against llama.cpp (tests/fixtures/gguf_arch_golden.jsonl,
 * scripts/gen_gguf_arch_golden.py), over the whole vector: where the
 * kernels mirror llama.cpp's (mirrors_llama_cpp) GGUF_MIRROR_REL (measured
 * 0 to 2.1e-7 when written; without the fp16/bf16 rounding of activations
 * for F16/BF16 weights it was 1.2-1.7e-2), elsewhere the 1e-2. A
 * decode step may move by GGUF_MAX_STEP_ABS (logits ~10-15): a difference
 * of 6e-8 in a prompt's state can flip one 8-bit rounding downstream
 * (measured 0.024 on one Qwen2 step, 2e-3 relative). */
#define GGUF_GOLDEN "tests/fixtures/gguf_arch_golden.jsonl"
#define GGUF_MIRROR_REL 1e-5
#define GGUF_MAX_REL 1e-2
#define GGUF_MAX_STEP_ABS 5e-2
#define GGUF_NEAR_TIE 0.15
#define GGUF_MODELS 6

static int same_files(const cJSON *rec, const char *dir)
{
    static const char *const files[2] = {"model.safetensors", "config.json"};
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(rec, "sha256");
    int ok = 1;
    for (int i = 0; i < 2; i++) {
        char p[600], hex[65] = "";
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(sha, files[i]);
        int same = file_sha256(p, hex) && cJSON_IsString(want) && !strcmp(hex, want->valuestring);
        CHECK_MSG(same, "%s has SHA-256 %s, the fixture was made from %s (regenerate both with "
                  "scripts/gen_arch_golden.py)", p, hex, cJSON_IsString(want) ? want->valuestring : "?");
        ok = ok && same;
    }
    return ok;
}

/* the feature-removal distances the fixture recorded must dwarf the bound */
static void check_mutations(const char *model, const cJSON *m)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, m)
    {
        printf("test_decoder_arch: %s mutated (%s): logits move by %.3g (bound %.0e)\n", model, it->string,
               it->valuedouble, ARCH_MAX_REL);
        CHECK_MSG(cJSON_IsNumber(it) && it->valuedouble > ARCH_POWER * ARCH_MAX_REL,
                  "%s: removing %s moves the logits by only %.3g: the comparison cannot see it", model, it->string,
                  it->valuedouble);
    }
}

/* The directory as a user loads it: stored types, an f16 cache.
 * Only the prompt: its logits (centered) and first greedy token. */
static void check_stored(const char *model, rg_decoder *d, const cJSON *rec, size_t V)
{
    size_t n;
    int32_t *ids = json_ids(cJSON_GetObjectItemCaseSensitive(rec, "ids"), &n);
    float *ours = malloc(V * sizeof(float)), *want = malloc(V * sizeof(float));
    rg_err e = {0};
    rg_kv_cache *kv = NULL;
    const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(rec, "logits_f32");
    CHECK(cJSON_IsString(b64) && decode_f32_b64(b64->valuestring, want, V));
    CHECK_OK(kv_cache_alloc(d, n, RG_KV_F16, &kv, &e), e);
    if (kv && decoder_prefill(d, kv, ids, n, ours, &e) == RG_OK) {
        double r = rel_err_centered(ours, want, V);
        int32_t a = argmax(ours, V), b = argmax(want, V);
        printf("test_decoder_arch: %s (%zu tokens) with weights as stored, f16 cache: centered relative error %.3g, "
               "first token %d (transformers %d)\n", model, n, r, a, b);
        CHECK_MSG(r < ARCH_STORED_REL, "%s: stored-type weights: relative error %.3g", model, r);
        CHECK_MSG(a == b, "%s: stored-type weights pick %d, transformers %d", model, a, b);
    } else {
        CHECK_MSG(0, "%s: prefill failed: %s", model, e.msg);
    }
    kv_cache_free(kv);
    free(ours);
    free(want);
    free(ids);
}

#define HF_BASE "\"vocab_size\":160,\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4," \
                "\"intermediate_size\":96,\"max_position_embeddings\":32768,\"rms_norm_eps\":1e-5"

/* config.json fields that change what is computed, each read or refused */
static void test_configs(void)
{
    static const struct {
        const char *json;
        int ok;
        float theta;
        int scaling;
        size_t ctx;
    } cases[] = {
        /* transformers 5: RoPE under rope_parameters, whose rope_theta wins over the top-level one */
        {"{\"model_type\":\"llama\"," HF_BASE ",\"rope_theta\":10000,\"rope_parameters\":{\"rope_type\":\"llama3\","
         "\"rope_theta\":500000.0,\"factor\":32.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
         "\"original_max_position_embeddings\":8192}}",
         1, 500000.0f, LLAMA_ROPE_SCALING_LLAMA3, 32768},
        /* a non-empty legacy rope_scaling wins over rope_parameters (as
         * transformers 5 reads it), the top-level theta beside it */
        {"{\"model_type\":\"llama\"," HF_BASE ",\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":2},"
         "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":20000}}",
         1, 10000.0f, LLAMA_ROPE_SCALING_LINEAR, 32768},
        /* an empty one does not */
        {"{\"model_type\":\"llama\"," HF_BASE ",\"rope_scaling\":{},\"rope_theta\":30000,"
         "\"rope_parameters\":{\"type\":\"linear\",\"factor\":2}}",
         1, 30000.0f, LLAMA_ROPE_SCALING_LINEAR, 32768},
        {"{\"model_type\":\"llama\"," HF_BASE ",\"rope_parameters\":{\"full_attention\":{\"rope_type\":\"default\","
         "\"rope_theta\":10000}}}",
         0, 0, 0, 0},
        {"{\"model_type\":\"llama\"," HF_BASE ",\"rope_parameters\":{\"rope_type\":\"yarn\",\"rope_theta\":1e4,"
         "\"factor\":4}}",
         0, 0, 0, 0},
        {"{\"model_type\":\"llama\"," HF_BASE ",\"partial_rotary_factor\":0.5}", 0, 0, 0, 0},
        {"{\"model_type\":\"llama\"," HF_BASE ",\"rope_parameters\":{\"rope_theta\":1e4,\"partial_rotary_factor\":0.25}}",
         0, 0, 0, 0},
        {"{\"model_type\":\"llama\"," HF_BASE ",\"mlp_bias\":true}", 0, 0, 0, 0},
        /* sliding windows cap the context where transformers would slide:
         * Mistral always (4096 when unnamed, null: none); Qwen2 with
         * use_sliding_window, in the layers layer_types marks or from
         * max_window_layers (28) on; never Llama */
        {"{\"model_type\":\"mistral\"," HF_BASE ",\"sliding_window\":2048}", 1, 10000.0f, 0, 2048},
        {"{\"model_type\":\"mistral\"," HF_BASE "}", 1, 10000.0f, 0, 4096},
        {"{\"model_type\":\"mistral\"," HF_BASE ",\"sliding_window\":null}", 1, 10000.0f, 0, 32768},
        {"{\"model_type\":\"qwen2\"," HF_BASE ",\"use_sliding_window\":false,\"sliding_window\":4096}", 1, 10000.0f,
         0, 32768},
        {"{\"model_type\":\"qwen2\"," HF_BASE ",\"use_sliding_window\":true,\"sliding_window\":4096}", 1, 10000.0f,
         0, 32768},
        {"{\"model_type\":\"qwen2\"," HF_BASE ",\"use_sliding_window\":true,\"sliding_window\":4096,"
         "\"max_window_layers\":1}",
         1, 10000.0f, 0, 4096},
        {"{\"model_type\":\"qwen2\"," HF_BASE ",\"use_sliding_window\":true,\"sliding_window\":4096,"
         "\"layer_types\":[\"full_attention\",\"sliding_attention\"]}",
         1, 10000.0f, 0, 4096},
        {"{\"model_type\":\"qwen2\"," HF_BASE ",\"use_sliding_window\":true,\"sliding_window\":4096,"
         "\"max_window_layers\":1,\"layer_types\":[\"full_attention\",\"full_attention\"]}",
         1, 10000.0f, 0, 32768},
        {"{\"model_type\":\"llama\"," HF_BASE ",\"layer_types\":[\"full_attention\",\"sliding_attention\"],"
         "\"sliding_window\":512}",
         1, 10000.0f, 0, 32768},
        {"{\"model_type\":\"mistral\"," HF_BASE ",\"sliding_window\":-3}", 0, 0, 0, 0},
    };
    /* Qwen3: per-head Q/K norms, NEOX, no biases, head_dim 128 by default
     * (Qwen3Config's), not hidden / heads */
    const char *qwen3 = "{\"model_type\":\"qwen3\"," HF_BASE "}";
    llama_config q3;
    rg_err qe = {0};
    CHECK_OK(llama_config_parse_hf(qwen3, strlen(qwen3), "qwen3", &q3, &qe), qe);
    CHECK(q3.arch == LLAMA_ARCH_QWEN3 && q3.qk_norm && !q3.qkv_bias && q3.rope_neox && q3.head_dim == 128);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        llama_config c;
        rg_err e = {0};
        rg_status st = llama_config_parse_hf(cases[i].json, strlen(cases[i].json), "config", &c, &e);
        CHECK_MSG((st == RG_OK) == cases[i].ok, "config %zu: status %d (%s)", i, (int)st, e.msg);
        if (st == RG_OK && cases[i].ok)
            CHECK_MSG(c.rope_theta == cases[i].theta && (int)c.rope_scaling == cases[i].scaling &&
                          c.n_ctx_train == cases[i].ctx,
                      "config %zu: theta %g, scaling %d, context %zu", i, c.rope_theta, (int)c.rope_scaling,
                      c.n_ctx_train);
    }
}

/* qwen2_bias's weights under configs that do not match them: the tensors
 * the decoder would not read make the load fail instead of being ignored */
static void test_unused_tensors(void)
{
    static const char *const configs[] = {
        /* a Llama reads no Q/K/V biases */
        "{\"model_type\":\"llama\",\"vocab_size\":160,\"hidden_size\":64,\"num_hidden_layers\":2,"
        "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":96,"
        "\"max_position_embeddings\":256,\"rms_norm_eps\":1e-5,\"tie_word_embeddings\":true}",
        /* one layer fewer than the weights hold */
        "{\"model_type\":\"qwen2\",\"vocab_size\":160,\"hidden_size\":64,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":96,"
        "\"max_position_embeddings\":256,\"rms_norm_eps\":1e-5,\"tie_word_embeddings\":true}",
    };
    static const char *const want[] = {"_proj.bias", "model.layers.1."};
    char dir[] = "/tmp/ragd-test-arch-XXXXXX", st_path[512], cfg_path[512], cwd[2048], src[4096];
    CHECK(mkdtemp(dir) != NULL && getcwd(cwd, sizeof cwd) != NULL);
    snprintf(src, sizeof src, "%s/" ARCH_DIR "/qwen2_bias/model.safetensors", cwd);
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    CHECK(symlink(src, st_path) == 0);
    for (size_t i = 0; i < sizeof configs / sizeof *configs; i++) {
        FILE *f = fopen(cfg_path, "w");
        CHECK(f && fputs(configs[i], f) >= 0);
        if (f)
            fclose(f);
        rg_decoder *d = NULL;
        rg_err e = {0};
        rg_decoder_opts o = {.device = RG_DEVICE_CPU, .device_set = 1};
        rg_status st = decoder_load(dir, &o, &d, &e);
        CHECK_MSG(st == RG_ERR_UNSUPPORTED && strstr(e.msg, want[i]), "mismatched config %zu: status %d (%s)", i,
                  (int)st, e.msg);
        printf("test_decoder_arch: refused: %s\n", e.msg);
        decoder_free(d);
    }
    unlink(cfg_path);
    unlink(st_path);
    rmdir(dir);
}

/* A GGUF file is the one its record names, checked by its SHA-256 */
static int same_file(const cJSON *rec, const char *path)
{
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(rec, "sha256");
    char hex[65] = "";
    int same = file_sha256(path, hex) && cJSON_IsString(want) && !strcmp(hex, want->valuestring);
    CHECK_MSG(same, "%s has SHA-256 %s, the fixture was made from %s (regenerate it with "
              "scripts/gen_gguf_arch_golden.py)", path, hex, cJSON_IsString(want) ? want->valuestring : "?");
    return same;
}

/* Every prompt of a golden file against its model. hf: the Hugging Face
 * directories (ARCH_DIR/<model>) against transformers, with f32 weights,
 * then the longest prompt's mutations and the model as stored; else the
 * GGUF files the records name, loaded as a user loads them. */
static void compare_golden(const char *golden, int hf, const hf_golden_bounds *bounds, int want_models)
{
    rg_buf b;
    rg_err e = {0};
    rg_buf_init(&b, 0);
    CHECK_OK(fs_read_file(golden, 16u << 20, &b, &e), e);
    char *p = b.data;
    cJSON *j;
    char last[256] = "";
    rg_decoder *d = NULL, *stored = NULL;
    int models = 0, prompts = 0, skip = 0;
    double worst = 0, step_abs = 0;
    while (b.data && (j = jsonl_next(&p))) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
        if (!cJSON_IsString(m)) { /* the meta line */
            cJSON_Delete(j);
            continue;
        }
        if (strcmp(last, m->valuestring)) {
            decoder_free(d);
            decoder_free(stored);
            d = stored = NULL;
            snprintf(last, sizeof last, "%s", m->valuestring);
            char path[512];
            snprintf(path, sizeof path, hf ? ARCH_DIR "/%s" : "%s", last);
            skip = hf ? !same_files(j, path) : !same_file(j, path);
            /* f32 weights for transformers' float32; a GGUF as it comes */
            rg_decoder_opts o = {.f32_weights = hf, .device = RG_DEVICE_CPU, .device_set = 1};
            rg_decoder_opts as_stored = {.device = RG_DEVICE_CPU, .device_set = 1};
            if (!skip) {
                CHECK_OK(decoder_load(path, &o, &d, &e), e);
                if (hf)
                    CHECK_OK(decoder_load(path, &as_stored, &stored, &e), e);
                skip = !d || (hf && !stored);
            }
            models += !skip;
        }
        if (!skip) {
            size_t V = decoder_vocab(d);
            double r = hf_golden_prompt(d, j, V, bounds, &step_abs);
            worst = r > worst ? r : worst;
            prompts++;
            const cJSON *mut = cJSON_GetObjectItemCaseSensitive(j, "mutations");
            if (hf && mut) {
                check_mutations(last, mut);
                check_stored(last, stored, j, V);
            }
        }
        cJSON_Delete(j);
    }
    decoder_free(d);
    decoder_free(stored);
    rg_buf_free(&b);
    CHECK_MSG(want_models < 0 ? models > 0 : models == want_models, "%s: %d of %d models compared", golden, models,
              want_models);
    printf("%s: %d models, %d prompts: worst logits relative error %.3g, worst decode-step logit difference %.3g\n",
           bounds->label, models, prompts, worst, step_abs);
}

int main(void)
{
    test_configs();
    test_unused_tensors();
    static const hf_golden_bounds hf = {.label = "test_decoder_arch: HF vs transformers", .ref = "transformers",
                                        .kv = RG_KV_F32, .n_greedy = 8, .max_rel = ARCH_MAX_REL,
                                        .max_step_abs = ARCH_MAX_STEP_ABS, .near_tie = ARCH_NEAR_TIE};
    const hf_golden_bounds gguf = {.label = "test_decoder_arch: GGUF vs llama.cpp", .ref = "llama.cpp",
                                   .kv = RG_KV_F16, .n_greedy = 8,
                                   .max_rel = mirrors_llama_cpp() ? GGUF_MIRROR_REL : GGUF_MAX_REL,
                                   .max_step_abs = GGUF_MAX_STEP_ABS, .near_tie = GGUF_NEAR_TIE};
    compare_golden(ARCH_GOLDEN, 1, &hf, ARCH_MODELS);
    /* $RAGD_GGUF_GOLDEN: another golden file of scripts/gen_gguf_arch_golden.py
     * (GGUF files of one's own, e.g. the default model requantized by
     * scripts/requant_gguf.py), compared instead of the seeds' */
    const char *other = getenv("RAGD_GGUF_GOLDEN");
    compare_golden(other && *other ? other : GGUF_GOLDEN, 0, &gguf, other && *other ? -1 : GGUF_MODELS);
    return check_finish("test_decoder_arch");
}
