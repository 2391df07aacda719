// decoder_cuda.cu - the Llama-family decoder on a CUDA GPU (see
// decoder_cuda.h). One layer over n tokens, all buffers on the device:
//   x (fp32 residual) --RMSNorm--> xh (fp16, or fp32: see below)
//   xh --product--> qkv (fp32, one product for Q | K | V)
//   bias + RoPE; K, V into each token's cache; Q --> q (fp32)
//   attention of each token over its cache --> atth (as xh)
//   atth --product--> tmp; x += tmp; RMSNorm --> xh
//   xh --product--> gu (fp32, gate | up); SwiGLU --> ffh (as xh)
//   ffh --product--> tmp; x += tmp (folded into the next RMSNorm)
// After the last layer only the rows whose logits are wanted are normalized
// and multiplied by the output matrix; the logits come back to the host.
// The weight matrices stay in the file's GGUF blocks where the type allows
// (model/decoder_cuda_matvec.cu: Q4_0 ... Q6_K), else they are fp16 copies
// (RAGD_CUDA_WEIGHTS=fp16 makes fp16 copies of all), or fp32 when the
// decoder was loaded for f32 activations (rg_decoder_opts.f32_activations):
// then every product input is fp32 too, and with an f32 KV cache nothing is
// rounded below float32.
// Products on blocks take 8-bit activations by default, quantized from fp32
// xh / atth / ffh as llama.cpp's CPU path does (decoder_cuda_q8.cu: the
// logits then follow llama.cpp's, the reference), by the kernel that writes
// them (RMSNorm, attention, SwiGLU: dec_cu_q8_out); RAGD_CUDA_ACTIVATIONS=fp16
// gives them fp16 activations instead (the float kernel and cuBLAS), as
// fp16 copies always have.
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <pthread.h>

#include "model/cuda_ctx.cuh"
#include "model/decoder_cuda_kernels.cuh"

extern "C" {
#include "common/log.h"
#include "model/decoder_cuda.h"
#include "model/decoder_internal.h"
#include "model/quant.h"
}

// CUDA graphs for repeated small calls. A forward pass launches ~10
// kernels and cuBLAS products per layer (~300 for SmolLM2-135M); a decode
// step of 16 sequences gives each microseconds of work, so launching is a
// large part of the step (on an H200, graphs took a one-sequence step
// from 2.09 to 1.79 ms, docs/BENCHMARKS.md). The sequence of launches depends only on the token
// count, the number of logits rows and the buffers (positions, caches and
// rows are read from device memory at run time), so a decode step (every
// token wants its logits) of at most DEC_GRAPH_MAX_TOKENS tokens whose
// shape was seen before is captured into a graph once and replayed after;
// one slot per batch size the generator engine's 16 sequences can give. Graphs are dropped when the buffers are
// reallocated. RAGD_CUDA_GRAPHS=0 turns them off; a capture that fails
// turns them off for the decoder (logged) and the call runs directly.
#define DEC_GRAPH_MAX_TOKENS 64
// Calls of at most this many tokens (decode steps, short prefill chunks)
// take dec_cu_attention's split path: each token's positions in spans on
// blocks of their own (scratch for this many tokens beside the activations).
#define DEC_ATT_SPLIT_TOKENS 64
#define DEC_GRAPH_SLOTS 16
#define DEC_SEEN_SLOTS 16
// cuBLAS's workspace, set explicitly so nothing is allocated while a graph
// is being captured.
#define DEC_BLAS_WORKSPACE ((size_t)32 << 20)

namespace {

// The attention geometry of the model's layers.
dec_cu_heads heads_of(const llama_config *cfg)
{
    return dec_cu_heads{(int)cfg->n_head, (int)cfg->n_head_kv, (int)cfg->head_dim, (int)cfg->rope_dim,
                        cfg->rope_neox, (int)(cfg->n_head_kv * cfg->head_dim)};
}

struct dev_layer {
    dec_cu_mat wqkv, wo, wgu, wdown; // [qd + 2 kvd, E], [E, qd], [2F, E], [E, F]
    float *attn_norm, *ffn_norm;     // [E]
    float *bqkv;                     // [qd + 2 kvd] or NULL
    float *qk_norm;                  // [2 head_dim]: Q's then K's per-head norm weights (Qwen3), or NULL
};

// Places tensors in one device allocation: a first pass (base == NULL)
// only measures, the second uploads through a bounded host staging buffer.
struct placer {
    char *base = nullptr;
    size_t off = 0;
    dec_cu_act act = DEC_CU_F16; // the type of matrices not kept in their blocks
    int keep_blocks = 0;         // quantized types the kernels read stay in their blocks
    int keep_floats = 0;         // so do F32, F16 and BF16 matrices (a q8 decoder: the CPU's float products)
    size_t matrix_bytes = 0;     // the matrices' bytes (what a decode step reads)
    size_t widest_blocks = 0;    // most values of one quantized part (for the unpacking scratch)
    char *stage = nullptr;       // stage_n values of that type
    size_t stage_n = 0;
    float *rowbuf = nullptr;   // one dequantized row
    rg_err *e = nullptr;
    rg_status st = RG_OK;

    void *take(size_t bytes)
    {
        size_t at = off;
        off += (bytes + 255) & ~(size_t)255;
        return base ? base + at : nullptr;
    }
    float *f32(const float *src, size_t n)
    {
        float *d = static_cast<float *>(take(n * sizeof(float)));
        if (d && !st)
            st = cu_check(cudaMemcpy(d, src, n * sizeof(float), cudaMemcpyHostToDevice), "weight upload", e);
        return d;
    }
    // Concatenated bias of Q, K, V (NULL when the model has none).
    float *bias3(const dec_layer *L, size_t qd, size_t kvd)
    {
        if (!L->bq && !L->bk && !L->bv)
            return nullptr;
        if (!L->bq || !L->bk || !L->bv) { // a file with some of the three: refused, not half-applied
            if (!st)
                st = rg_error(e, RG_ERR_CORRUPT, "a layer has some but not all of the Q, K and V biases");
            return nullptr;
        }
        float *d = static_cast<float *>(take((qd + 2 * kvd) * sizeof(float)));
        if (d && !st) {
            const float *src[3] = {L->bq, L->bk, L->bv};
            size_t len[3] = {qd, kvd, kvd}, at = 0;
            for (int i = 0; i < 3 && !st; at += len[i], i++)
                st = cu_check(cudaMemcpy(d + at, src[i], len[i] * sizeof(float), cudaMemcpyHostToDevice),
                              "bias upload", e);
        }
        return d;
    }
    size_t elem() const { return act == DEC_CU_F32 ? sizeof(float) : sizeof(uint16_t); }
    bool blocks(const dec_mat *m) const
    {
        size_t packed = 0;
        return ((keep_blocks && dec_cu_blocks_on_device(m->type)) || (keep_floats && dec_cu_float_type(m->type))) &&
               ggml_row_bytes(m->type, m->cols, &packed, nullptr) == RG_OK && packed == m->row_bytes;
    }
    // n matrices' rows as they are in the file, one after the other (same
    // type and cols).
    dec_cu_part raw(const dec_mat *const *m, int n)
    {
        dec_cu_part p = {nullptr, m[0]->type, 0, m[0]->row_bytes};
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += m[i]->rows * m[i]->row_bytes;
        char *d = static_cast<char *>(take(total));
        matrix_bytes += total;
        for (int i = 0; i < n; i++)
            p.rows += (int)m[i]->rows;
        if ((size_t)p.rows * m[0]->cols > widest_blocks)
            widest_blocks = (size_t)p.rows * m[0]->cols;
        p.w = d;
        for (int i = 0; i < n && d && !st; i++) {
            size_t b = m[i]->rows * m[i]->row_bytes;
            st = cu_check(cudaMemcpy(d, m[i]->data, b, cudaMemcpyHostToDevice), "weight upload", e);
            d += b;
        }
        return p;
    }
    // The rows of n matrices (same cols) one after the other, each row
    // dequantized by model/quant, as fp32 or rounded to fp16 (nearest even).
    dec_cu_part plain(const dec_mat *const *m, int n)
    {
        size_t total = 0, es = elem();
        dec_cu_part p = {nullptr, act == DEC_CU_F32 ? (uint32_t)GGML_TYPE_F32 : (uint32_t)GGML_TYPE_F16, 0,
                         m[0]->cols * es};
        for (int i = 0; i < n; i++) {
            total += m[i]->rows * m[i]->cols;
            p.rows += (int)m[i]->rows;
        }
        char *d = static_cast<char *>(take(total * es));
        matrix_bytes += total * es;
        p.w = d;
        if (!d || st)
            return p;
        size_t cols = m[0]->cols, fill = 0, done = 0;
        for (int i = 0; i < n && !st; i++) {
            const dec_mat *w = m[i];
            for (size_t r = 0; r < w->rows && !st; r++) {
                if (dequantize_row(w->type, (const char *)w->data + r * w->row_bytes, rowbuf, cols, e) != RG_OK) {
                    st = rg_error_wrap(e, "dequantizing a weight for the GPU");
                    break;
                }
                if (act == DEC_CU_F32) {
                    memcpy(stage + fill * es, rowbuf, cols * sizeof(float));
                } else {
                    uint16_t *h = reinterpret_cast<uint16_t *>(stage) + fill;
                    for (size_t c = 0; c < cols; c++)
                        h[c] = f32_to_fp16(rowbuf[c]);
                }
                fill += cols;
                if (fill + cols > stage_n || (i == n - 1 && r + 1 == w->rows)) {
                    st = cu_check(cudaMemcpy(d + done * es, stage, fill * es, cudaMemcpyHostToDevice),
                                  "weight upload", e);
                    done += fill;
                    fill = 0;
                }
            }
        }
        return p;
    }
    // n matrices (same cols) as one: runs of matrices kept in the same
    // blocks become one part, runs of the others one plain part.
    dec_cu_mat mats(const dec_mat *const *m, int n)
    {
        dec_cu_mat M = {};
        M.cols = (int)m[0]->cols;
        for (int i = 0; i < n;) {
            bool b = blocks(m[i]);
            int j = i + 1;
            while (j < n && blocks(m[j]) == b && (!b || m[j]->type == m[i]->type))
                j++;
            M.part[M.n_part] = b ? raw(m + i, j - i) : plain(m + i, j - i);
            M.rows += M.part[M.n_part++].rows;
            i = j;
        }
        return M;
    }
    dec_cu_mat mats(const dec_mat *m) { return mats(&m, 1); }
};

struct step_graph {
    int n, n_out;          // the shape it was captured for
    cudaGraphExec_t exec;  // nullptr: a free slot
    unsigned long long used;
};

// Activation buffers for up to cap tokens, carved from one allocation.
struct acts {
    float *x, *qkv, *q, *tmp, *gu;
    void *xh, *atth, *ffh; // of the decoder's dec_cu_act
    dec_cu_tok *tok;
    int32_t *rows;
    void *att;      // the attention's split path, for att_tokens tokens
    int att_tokens;
    void *q8;       // q8_bytes: the quantized activations of a product (q8 decoders)
    size_t q8_bytes;
    float *rope;    // [cap][rope_dim]: each token's cos | sin from the CPU path (ggml decoders)
};

} // namespace

struct rg_decoder_cuda {
    llama_config cfg;
    cu_ctx cx; // device, stream, cuBLAS handle, call mutex
    char *weights; // one allocation holding every tensor below
    size_t weight_bytes;
    dev_layer *layers;
    dec_cu_act act; // weights not kept in their blocks: fp16 or fp32
    dec_cu_act xt;  // what RMSNorm, attention and SwiGLU write: act, or fp32 with q8
    int q8;         // block products take 8-bit activations (RAGD_CUDA_ACTIVATIONS)
    int ggml;       // with q8: RoPE, attention and SwiGLU in the CPU path's arithmetic (decoder_cuda_ggml.cu)
    size_t matrix_bytes; // of the weight matrices (a decode step reads them all)
    int keep_blocks;     // quantized matrices stay in their GGUF blocks (RAGD_CUDA_WEIGHTS)
    dec_cu_mat out_w;
    dec_cu_scratch scratch; // unpacked quantized rows for cuBLAS (prefill without q8)
    float *out_norm, *inv_freq;

    char *ws; // activations for cap tokens
    size_t cap;
    acts a;
    float *logits; // [cap_out, V]
    size_t cap_out;

    // host staging of one call's inputs (hx, htok, hrows lie in hstage):
    // pinned, or plain memory where the system refuses to lock more
    char *hstage;
    int hstage_pinned;
    float *hx;
    dec_cu_tok *htok;
    int32_t *hrows;
    float *hrope; // [cap][rope_dim] (ggml decoders)

    void *blas_ws; // DEC_BLAS_WORKSPACE bytes
    int graphs_on;
    int matvec_max; // products of at most this many rows on dec_cu_linear's own kernel (RAGD_CUDA_MATVEC_ROWS)
    int att_runs;   // q8 attention: a prefill's tokens share blocks (RAGD_CUDA_ATT_RUNS=0: one a block)
    step_graph graphs[DEC_GRAPH_SLOTS];
    int seen[DEC_SEEN_SLOTS][2]; // shapes run directly once (n, n_out); n 0: empty
    unsigned seen_next;
    unsigned long long tick;
};

static void drop_graphs(rg_decoder_cuda *c)
{
    for (int i = 0; i < DEC_GRAPH_SLOTS; i++) {
        if (c->graphs[i].exec)
            cudaGraphExecDestroy(c->graphs[i].exec);
        c->graphs[i] = step_graph{0, 0, nullptr, 0};
    }
    memset(c->seen, 0, sizeof c->seen);
}

static void place_weights(rg_decoder_cuda *c, const rg_decoder *d, placer *p)
{
    const llama_config *cfg = &d->cfg;
    size_t qd = cfg->n_head * cfg->head_dim, kvd = cfg->n_head_kv * cfg->head_dim;
    for (size_t l = 0; l < cfg->n_layer; l++) {
        const dec_layer *L = &d->layers[l];
        dev_layer *g = &c->layers[l];
        const dec_mat *qkv[3] = {&L->wq, &L->wk, &L->wv}, *gu[2] = {&L->gate, &L->up};
        g->wqkv = p->mats(qkv, 3);
        g->wo = p->mats(&L->wo);
        g->wgu = p->mats(gu, 2);
        g->wdown = p->mats(&L->down);
        g->attn_norm = p->f32(L->attn_norm, cfg->n_embd);
        g->ffn_norm = p->f32(L->ffn_norm, cfg->n_embd);
        g->bqkv = p->bias3(L, qd, kvd);
        g->qk_norm = nullptr;
        if (L->q_norm) { // the loader reads both or neither
            g->qk_norm = static_cast<float *>(p->take(2 * cfg->head_dim * sizeof(float)));
            const float *src[2] = {L->q_norm, L->k_norm};
            for (int i = 0; i < 2 && g->qk_norm && !p->st; i++)
                p->st = cu_check(cudaMemcpy(g->qk_norm + i * cfg->head_dim, src[i], cfg->head_dim * sizeof(float),
                                            cudaMemcpyHostToDevice),
                                 "norm upload", p->e);
        }
    }
    c->out_w = p->mats(&d->output);
    c->out_norm = p->f32(d->out_norm, cfg->n_embd);
    c->inv_freq = p->f32(d->inv_freq, cfg->rope_dim / 2);
}

// Whether any weight matrix of d is of a type the GPU keeps in its blocks.
static int any_blocks(const rg_decoder *d)
{
    if (dec_cu_blocks_on_device(d->output.type))
        return 1;
    for (size_t l = 0; l < d->cfg.n_layer; l++) {
        const dec_layer *L = &d->layers[l];
        const dec_mat *m[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
        for (int i = 0; i < 7; i++)
            if (dec_cu_blocks_on_device(m[i]->type))
                return 1;
    }
    return 0;
}

static void free_staging(rg_decoder_cuda *c)
{
    if (c->hstage_pinned)
        cudaFreeHost(c->hstage);
    else
        free(c->hstage);
    c->hstage = nullptr;
}

extern "C" void decoder_cuda_free(rg_decoder_cuda *c)
{
    if (!c)
        return;
    cu_ctx_sync(&c->cx);
    drop_graphs(c);
    cudaFree(c->blas_ws);
    cudaFree(c->ws);
    cudaFree(c->logits);
    cudaFree(c->scratch.buf);
    cudaFree(c->weights);
    cu_ctx_close(&c->cx);
    free(c->layers);
    free_staging(c);
    free(c);
}

// The matrices' kinds for the device description: "Q4_1, Q8_0 blocks",
// "fp16" copies, a q8 decoder's float matrices "F32 as in the file", or
// several of these.
static void weight_kinds(const rg_decoder_cuda *c, char *out, size_t size)
{
    uint32_t seen[2][8]; // block types, float types kept as in the file
    int n_seen[2] = {0, 0}, plain = 0;
    auto note = [&](const dec_cu_mat &m) {
        for (int i = 0; i < m.n_part; i++) {
            uint32_t t = m.part[i].type;
            int kind = dec_cu_blocks_on_device(t) ? 0 : c->q8 && dec_cu_float_type(t) ? 1 : -1;
            if (kind < 0) {
                plain = 1;
                continue;
            }
            int k = 0;
            while (k < n_seen[kind] && seen[kind][k] != t)
                k++;
            if (k == n_seen[kind] && n_seen[kind] < 8)
                seen[kind][n_seen[kind]++] = t;
        }
    };
    for (size_t l = 0; l < c->cfg.n_layer; l++) {
        note(c->layers[l].wqkv);
        note(c->layers[l].wo);
        note(c->layers[l].wgu);
        note(c->layers[l].wdown);
    }
    note(c->out_w);
    size_t at = 0;
    out[0] = 0;
    for (int kind = 0; kind < 2; kind++) {
        for (int k = 0; k < n_seen[kind] && at < size; k++) {
            const char *name = ggml_type_name(seen[kind][k]);
            at += (size_t)snprintf(out + at, size - at, "%s%s", k ? ", " : kind && n_seen[0] ? " and " : "",
                                   name ? name : "?");
        }
        if (n_seen[kind] && at < size)
            at += (size_t)snprintf(out + at, size - at, kind ? " as in the file" : " blocks");
    }
    if (plain && at < size)
        snprintf(out + at, size - at, "%s%s", n_seen[0] + n_seen[1] ? " and " : "",
                 c->act == DEC_CU_F32 ? "fp32" : "fp16");
}

// What the kernels and cuBLAS's int dimensions can take.
static rg_status check_shape(const llama_config *cfg, rg_err *e)
{
    size_t qd = cfg->n_head * cfg->head_dim, kvd = cfg->n_head_kv * cfg->head_dim;
    if (cfg->head_dim > DEC_CU_MAX_HEAD_DIM || cfg->head_dim % 2 || cfg->rope_dim % 2 ||
        cfg->rope_dim > cfg->head_dim)
        return rg_error(e, RG_ERR_UNSUPPORTED, "CUDA decoder: head size %zu (rotated %zu) is not supported (even, <= %d)",
                        cfg->head_dim, cfg->rope_dim, DEC_CU_MAX_HEAD_DIM);
    if (cfg->qk_norm && cfg->n_head + cfg->n_head_kv > DEC_CU_MAX_NORM_HEADS)
        return rg_error(e, RG_ERR_UNSUPPORTED, "CUDA decoder: per-head Q/K norms of %zu heads (at most %d)",
                        cfg->n_head + cfg->n_head_kv, DEC_CU_MAX_NORM_HEADS);
    if (qd + 2 * kvd > INT_MAX / 2 || 2 * cfg->n_ff > INT_MAX / 2 || cfg->n_vocab > INT_MAX / 2 ||
        cfg->n_embd > INT_MAX / 2 || cfg->n_layer > INT_MAX)
        return rg_error(e, RG_ERR_UNSUPPORTED, "CUDA decoder: model dimensions beyond the kernels' limits");
    return RG_OK;
}

extern "C" rg_status decoder_cuda_create(const rg_decoder *d, rg_decoder_cuda **out, char *desc, size_t desc_size,
                                         rg_err *e)
{
    *out = nullptr;
    const llama_config *cfg = &d->cfg;
    rg_status st = check_shape(cfg, e);
    if (st)
        return st;
    cudaDeviceProp prop;
    if ((st = cu_ctx_device("CUDA decoder", "8.0 or newer is needed", &prop, e)))
        return st;

    rg_decoder_cuda *c = static_cast<rg_decoder_cuda *>(calloc(1, sizeof *c));
    if (!c)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    if ((st = cu_ctx_open(&c->cx, e))) {
        decoder_cuda_free(c);
        return st;
    }
    if ((st = cu_check(cudaMalloc(&c->blas_ws, DEC_BLAS_WORKSPACE), "allocating the cuBLAS workspace", e)) ||
        (st = cublas_check(cublasSetWorkspace(c->cx.blas, c->blas_ws, DEC_BLAS_WORKSPACE), "cublasSetWorkspace", e))) {
        cudaGetLastError();
        decoder_cuda_free(c);
        return st;
    }
    {
        const char *g = getenv("RAGD_CUDA_GRAPHS");
        c->graphs_on = !(g && strcmp(g, "0") == 0);
        const char *r = getenv("RAGD_CUDA_ATT_RUNS");
        c->att_runs = !(r && strcmp(r, "0") == 0);
        const char *m = getenv("RAGD_CUDA_MATVEC_ROWS");
        char *end = nullptr;
        long v = m && *m ? strtol(m, &end, 10) : DEC_CU_MATVEC_DEFAULT_ROWS;
        if (m && *m && (*end || v < 0)) {
            LOG_WARN("CUDA decoder: RAGD_CUDA_MATVEC_ROWS=%s is not a row count; using %d", m,
                     DEC_CU_MATVEC_DEFAULT_ROWS);
            v = DEC_CU_MATVEC_DEFAULT_ROWS;
        }
        c->matvec_max = v > DEC_CU_MATVEC_MAX_ROWS ? DEC_CU_MATVEC_MAX_ROWS : (int)v;
        // GGUF blocks by default (the kernels read 4.5-8.5 bits a weight
        // where fp16 copies take 16); fp16 copies on request, to compare
        const char *w = getenv("RAGD_CUDA_WEIGHTS");
        c->keep_blocks = 1;
        if (w && strcmp(w, "fp16") == 0)
            c->keep_blocks = 0;
        else if (w && *w && strcmp(w, "blocks") != 0)
            LOG_WARN("CUDA decoder: RAGD_CUDA_WEIGHTS=%s is neither blocks nor fp16; keeping GGUF blocks", w);
        // 8-bit activations for the blocks by default (llama.cpp's function)
        const char *a = getenv("RAGD_CUDA_ACTIVATIONS");
        c->q8 = 1;
        if (a && strcmp(a, "fp16") == 0)
            c->q8 = 0;
        else if (a && *a && strcmp(a, "q8") != 0)
            LOG_WARN("CUDA decoder: RAGD_CUDA_ACTIVATIONS=%s is neither q8 nor fp16; using q8", a);
    }
    c->cfg = *cfg;
    c->act = d->f32_activations ? DEC_CU_F32 : DEC_CU_F16;
    if (c->act == DEC_CU_F32)
        c->keep_blocks = 0; // the f32 decoder computes transformers' float32 function on fp32 copies
    if (!c->keep_blocks || !any_blocks(d))
        c->q8 = 0; // 8-bit activations are for block matrices; a file without any keeps fp16 products
    c->layers = static_cast<dev_layer *>(calloc(cfg->n_layer, sizeof *c->layers));
    placer p;
    p.e = e;
    p.act = c->act;
    p.keep_blocks = c->keep_blocks;
    p.keep_floats = c->q8;
    p.stage_n = (size_t)16 << 20; // 32 MiB of fp16 (64 of fp32), at least one row
    if (p.stage_n < cfg->n_ff || p.stage_n < cfg->n_embd)
        p.stage_n = cfg->n_ff > cfg->n_embd ? cfg->n_ff : cfg->n_embd;
    size_t widest = cfg->n_ff > cfg->n_embd ? cfg->n_ff : cfg->n_embd;
    size_t qd = cfg->n_head * cfg->head_dim;
    if (qd > widest)
        widest = qd;
    if (!c->layers || !(p.stage = static_cast<char *>(malloc(p.stage_n * p.elem()))) ||
        !(p.rowbuf = static_cast<float *>(malloc(widest * sizeof(float))))) {
        st = rg_error(e, RG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    place_weights(c, d, &p); // measure (and refuse what cannot be placed)
    if ((st = p.st))
        goto fail;
    if ((st = cu_check(cudaMalloc((void **)&c->weights, p.off), "allocating the weights", e))) {
        cudaGetLastError(); // not sticky: clear it so later launch checks are not blamed
        goto fail;
    }
    c->weight_bytes = p.off;
    p.base = c->weights;
    p.off = 0;
    p.matrix_bytes = 0;
    place_weights(c, d, &p); // upload
    if ((st = p.st))
        goto fail;
    c->matrix_bytes = p.matrix_bytes;
    c->xt = c->q8 ? DEC_CU_F32 : c->act;
    {
        dec_cu_heads g = heads_of(cfg);
        c->ggml = c->q8 && dec_cu_attention_ggml_takes(&g);
        if (c->q8 && !c->ggml)
            LOG_WARN("CUDA decoder: head size %zu: attention in the GPU's own order (the CPU arithmetic's kernel "
                     "takes multiples of 8 up to 144); logits may stray further from llama.cpp's",
                     cfg->head_dim);
    }
    if (p.widest_blocks && !c->q8) { // prefill unpacks quantized rows for cuBLAS: up to 32 MiB at a time
        size_t cols = cfg->n_ff > cfg->n_embd ? cfg->n_ff : cfg->n_embd;
        if (qd > cols)
            cols = qd;
        c->scratch.elems = p.widest_blocks < ((size_t)16 << 20) ? p.widest_blocks : ((size_t)16 << 20);
        if (c->scratch.elems < cols)
            c->scratch.elems = cols;
        if ((st = cu_check(cudaMalloc((void **)&c->scratch.buf, c->scratch.elems * sizeof(cu_f16)),
                           "allocating the weight unpacking scratch", e))) {
            cudaGetLastError();
            goto fail;
        }
    }
    if (desc) {
        char mv[96] = "all products on cuBLAS";
        if (c->q8)
            snprintf(mv, sizeof mv, "blocks times 8-bit activations on ragd's integer kernel (any rows)%s",
                     c->ggml ? ", the CPU path's arithmetic" : "");
        else if (c->act == DEC_CU_F16 && c->matvec_max > 0)
            snprintf(mv, sizeof mv, "products of up to %d rows on ragd's kernel", c->matvec_max);
        char kinds[96];
        weight_kinds(c, kinds, sizeof kinds);
        snprintf(desc, desc_size, "%s, compute %d.%d, %.0f MiB of weight matrices (%s), CUDA graphs %s, %s",
                 prop.name, prop.major, prop.minor, (double)c->matrix_bytes / (1024.0 * 1024.0), kinds,
                 c->graphs_on ? "on" : "off", mv);
    }
    free(p.stage);
    free(p.rowbuf);
    *out = c;
    return RG_OK;
fail:
    free(p.stage);
    free(p.rowbuf);
    decoder_cuda_free(c);
    return st;
}

// ---- buffers ----------------------------------------------------------------------

extern "C" rg_status decoder_cuda_host_alloc(size_t bytes, void **out, rg_err *e)
{
    *out = nullptr;
    rg_status st = cu_check(cudaMallocHost(out, bytes ? bytes : 1), "allocating pinned host memory", e);
    if (st)
        cudaGetLastError(); // not sticky: the caller may fall back to plain memory
    return st;
}

extern "C" void decoder_cuda_host_free(void *p)
{
    cudaFreeHost(p);
}

static size_t align256(size_t b)
{
    return (b + 255) & ~(size_t)255;
}

static rg_status grow_acts(rg_decoder_cuda *c, size_t n, rg_err *e)
{
    if (n <= c->cap)
        return RG_OK;
    const llama_config *cfg = &c->cfg;
    size_t E = cfg->n_embd, qd = cfg->n_head * cfg->head_dim, W = qd + 2 * cfg->n_head_kv * cfg->head_dim,
           F = cfg->n_ff, es = c->xt == DEC_CU_F32 ? 4 : 2;
    int att_tokens = n < DEC_ATT_SPLIT_TOKENS ? (int)n : DEC_ATT_SPLIT_TOKENS;
    dec_cu_heads g = heads_of(cfg);
    // a q8 decoder: room for any product's input quantized (either kind)
    size_t q8_row = 0;
    if (c->q8)
        for (size_t in : {E, qd, F})
            for (int kind : {DEC_Q8_A8_0, DEC_Q8_K}) {
                size_t b = dec_cu_q8_row_bytes(kind, (int)in);
                q8_row = b > q8_row ? b : q8_row;
            }
    size_t rope_floats = c->ggml ? n * cfg->rope_dim : 0;
    enum { SLOTS = 13 };
    size_t sz[SLOTS] = {n * E * 4,      n * W * 4,      n * qd * 4,      n * E * 4,
                        n * 2 * F * 4,  n * E * es,     n * qd * es,     n * F * es,
                        n * sizeof(dec_cu_tok), n * sizeof(int32_t), dec_cu_attention_scratch_bytes(&g, att_tokens),
                        n * q8_row, rope_floats * sizeof(float)};
    size_t total = 0;
    for (size_t i = 0; i < SLOTS; i++)
        total += align256(sz[i]);
    drop_graphs(c); // they point into the old buffers
    c->cap = 0;     // the previous call synchronized: nothing uses ws
    rg_status st = cu_check(cu_regrow((void **)&c->ws, total), "allocating decoder activations", e);
    if (st)
        return st;
    char *p = c->ws;
    void *slot[SLOTS];
    for (size_t i = 0; i < SLOTS; i++) {
        slot[i] = p;
        p += align256(sz[i]);
    }
    c->a.x = (float *)slot[0];
    c->a.qkv = (float *)slot[1];
    c->a.q = (float *)slot[2];
    c->a.tmp = (float *)slot[3];
    c->a.gu = (float *)slot[4];
    c->a.xh = slot[5];
    c->a.atth = slot[6];
    c->a.ffh = slot[7];
    c->a.tok = (dec_cu_tok *)slot[8];
    c->a.rows = (int32_t *)slot[9];
    c->a.att = slot[10];
    c->a.att_tokens = att_tokens;
    c->a.q8 = slot[11];
    c->a.q8_bytes = sz[11];
    c->a.rope = (float *)slot[12];

    // host staging in pinned memory: the uploads then run at the bus's rate
    // without a driver copy (each call waits for its stream before it
    // returns, so the next call's writes never race a pending upload)
    size_t hsz[4] = {n * E * sizeof(float), n * sizeof(dec_cu_tok), n * sizeof(int32_t), rope_floats * sizeof(float)};
    size_t hbytes = align256(hsz[0]) + align256(hsz[1]) + align256(hsz[2]) + hsz[3];
    free_staging(c);
    c->hstage_pinned = cudaMallocHost((void **)&c->hstage, hbytes) == cudaSuccess;
    if (!c->hstage_pinned) {
        cudaGetLastError(); // not sticky: plain memory works too, staged by the driver
        c->hstage = static_cast<char *>(malloc(hbytes));
    }
    if (!c->hstage)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for decoder input staging");
    c->hx = (float *)c->hstage;
    c->htok = (dec_cu_tok *)(c->hstage + align256(hsz[0]));
    c->hrows = (int32_t *)(c->hstage + align256(hsz[0]) + align256(hsz[1]));
    c->hrope = (float *)(c->hstage + align256(hsz[0]) + align256(hsz[1]) + align256(hsz[2]));
    c->cap = n;
    return RG_OK;
}

static rg_status grow_logits(rg_decoder_cuda *c, size_t n_out, rg_err *e)
{
    if (n_out <= c->cap_out)
        return RG_OK;
    drop_graphs(c);
    c->cap_out = 0;
    rg_status st =
        cu_check(cu_regrow((void **)&c->logits, n_out * c->cfg.n_vocab * sizeof(float)), "allocating logits", e);
    if (st)
        return st;
    c->cap_out = n_out;
    return RG_OK;
}

// ---- the forward pass ------------------------------------------------------------------

static rg_status run_step(rg_decoder_cuda *c, int N, int n_out, rg_err *e);

static rg_status forward_locked(rg_decoder_cuda *c, const rg_decoder *d, rg_kv_cache *const *kv, const int32_t *ids,
                                const size_t *pos, size_t n, const size_t *out_rows, size_t n_out, float *logits,
                                rg_err *e)
{
    const llama_config *cfg = &c->cfg;
    int E = (int)cfg->n_embd, V = (int)cfg->n_vocab, N = (int)n;
    rg_status st;
    if ((st = cu_check(cudaSetDevice(c->cx.device), "cudaSetDevice", e)) || (st = grow_acts(c, n, e)) ||
        (n_out && (st = grow_logits(c, n_out, e))))
        return st;
    // inputs: embeddings from the mapped file (as the CPU path), token slots
    for (size_t t = 0; t < n; t++) {
        if ((st = dec_mat_row(&d->tok_embd, (size_t)ids[t], c->hx + t * (size_t)E, e)))
            return rg_error_wrap(e, "token embedding");
        c->htok[t].k = kv[t]->k;
        c->htok[t].v = kv[t]->v;
        c->htok[t].cap = kv[t]->cap;
        c->htok[t].pos = (int32_t)pos[t];
        c->htok[t].half = kv[t]->type == RG_KV_F16;
        // the CPU path's "lone token": no neighbour in the call shares its cache
        c->htok[t].one = !(t > 0 && kv[t - 1] == kv[t]) && !(t + 1 < n && kv[t + 1] == kv[t]);
        c->htok[t].run = 0; // (the q8 attention's runs: below)
        if (c->ggml) {
            float *r = c->hrope + t * cfg->rope_dim;
            dec_rope_angles(d, pos[t], r, r + cfg->rope_dim / 2);
        }
    }
    if (c->ggml) {
        dec_cu_heads g = heads_of(cfg);
        dec_cu_attention_ggml_runs(c->htok, N, &g, c->att_runs ? N : 1);
    }
    for (size_t i = 0; i < n_out; i++)
        c->hrows[i] = (int32_t)out_rows[i];
    cudaStream_t s = c->cx.stream;
    // pinned sources: the copies read them when the stream runs, before the
    // synchronization that ends this call (plain ones at the call)
    if ((st = cu_check(cudaMemcpyAsync(c->a.x, c->hx, n * (size_t)E * sizeof(float), cudaMemcpyHostToDevice, s),
                       "input upload", e)) ||
        (st = cu_check(cudaMemcpyAsync(c->a.tok, c->htok, n * sizeof(dec_cu_tok), cudaMemcpyHostToDevice, s),
                       "input upload", e)) ||
        (n_out && (st = cu_check(cudaMemcpyAsync(c->a.rows, c->hrows, n_out * sizeof(int32_t),
                                                 cudaMemcpyHostToDevice, s),
                                 "input upload", e))) ||
        (c->ggml && cfg->rope_dim &&
         (st = cu_check(cudaMemcpyAsync(c->a.rope, c->hrope, n * cfg->rope_dim * sizeof(float), cudaMemcpyHostToDevice,
                                        s),
                        "input upload", e))))
        return st;
    if ((st = run_step(c, N, (int)n_out, e)))
        return st;
    // into pinned memory (decoder_logits_alloc) this runs at the bus's rate
    // and lands by the synchronization below; into pageable memory the driver
    // stages it and returns when it is done
    if (n_out && (st = cu_check(cudaMemcpyAsync(logits, c->logits, n_out * (size_t)V * sizeof(float),
                                                cudaMemcpyDeviceToHost, s),
                                "logits download", e)))
        return st;
    // a fault in any kernel of the step surfaces here
    return cu_check(cudaStreamSynchronize(s), "decoder step", e);
}

// Every launch of a forward pass over N tokens whose inputs are on the
// device (a.x, a.tok, a.rows), ending with n_out rows of logits in
// c->logits: nothing that reads or writes host memory, so it can be
// captured into a graph.
static rg_status run_layers(rg_decoder_cuda *c, int N, int n_out, rg_err *e)
{
    const llama_config *cfg = &c->cfg;
    int E = (int)cfg->n_embd, F = (int)cfg->n_ff;
    const dec_cu_heads g = heads_of(cfg);
    cudaStream_t s = c->cx.stream;
    rg_status st;
    const acts &a = c->a;
    const dec_cu_act t = c->xt;
    const dec_cu_prod P = {c->cx.blas, s, c->matvec_max, t, c->q8, c->scratch, a.q8, a.q8_bytes};
    float eps = cfg->rms_eps;
    // q8: each kernel feeding a product also leaves its output quantized
    // for it (a.q8), so the product launches no quantizing kernel
    auto q8_for = [&](const dec_cu_mat *W, int fused) {
        return dec_cu_q8_out{c->q8 && fused ? dec_cu_q8_kind_for(W) : (int)DEC_Q8_NONE, a.q8};
    };
    for (size_t l = 0; l < cfg->n_layer; l++) {
        const dev_layer *L = &c->layers[l];
        int li = (int)l;
        const dec_cu_q8_out qkv_in = q8_for(&L->wqkv, 1), o_in = q8_for(&L->wo, c->ggml),
                            gu_in = q8_for(&L->wgu, 1), down_in = q8_for(&L->wdown, c->ggml);
        // the previous layer's down projection is added here (none before layer 0)
        if ((st = dec_cu_rmsnorm(s, a.x, l ? a.tmp : nullptr, nullptr, N, E, L->attn_norm, eps, a.xh, t, &qkv_in,
                                 e)) ||
            (st = dec_cu_linear(&P, a.xh, N, &L->wqkv, qkv_in.kind, a.qkv, e)) ||
            (st = dec_cu_qkv_rope(s, a.qkv, L->bqkv, L->qk_norm, eps, N, &g, c->inv_freq, c->ggml ? a.rope : nullptr,
                                  a.tok, li, a.q, e)) ||
            (st = c->ggml ? dec_cu_attention_ggml(s, a.q, a.tok, N, &g, li, static_cast<float *>(a.atth), &o_in, e)
                          : dec_cu_attention(s, a.q, a.tok, N, &g, li, a.atth, t, a.att, a.att_tokens, e)) ||
            (st = dec_cu_linear(&P, a.atth, N, &L->wo, o_in.kind, a.tmp, e)) ||
            (st = dec_cu_rmsnorm(s, a.x, a.tmp, nullptr, N, E, L->ffn_norm, eps, a.xh, t, &gu_in, e)) ||
            (st = dec_cu_linear(&P, a.xh, N, &L->wgu, gu_in.kind, a.gu, e)) ||
            (st = c->ggml ? dec_cu_swiglu_ggml(s, a.gu, N, F, static_cast<float *>(a.ffh), &down_in, e)
                          : dec_cu_swiglu(s, a.gu, N, F, a.ffh, t, e)) ||
            (st = dec_cu_linear(&P, a.ffh, N, &L->wdown, down_in.kind, a.tmp, e)))
            return st;
    }
    if (n_out) {
        // the last down projection is added for the wanted rows only
        const dec_cu_q8_out out_in = q8_for(&c->out_w, 1);
        if ((st = dec_cu_rmsnorm(s, a.x, a.tmp, a.rows, n_out, E, c->out_norm, eps, a.xh, t, &out_in, e)) ||
            (st = dec_cu_linear(&P, a.xh, n_out, &c->out_w, out_in.kind, c->logits, e)))
            return st;
    }
    return RG_OK;
}

// run_layers through a graph for a decode step whose shape was seen before
// (prefill chunks vary too much to be worth capturing).
static rg_status run_step(rg_decoder_cuda *c, int N, int n_out, rg_err *e)
{
    if (!c->graphs_on || N > DEC_GRAPH_MAX_TOKENS || n_out != N)
        return run_layers(c, N, n_out, e);
    cudaStream_t s = c->cx.stream;
    step_graph *free_slot = nullptr, *oldest = &c->graphs[0];
    for (int i = 0; i < DEC_GRAPH_SLOTS; i++) {
        step_graph *g = &c->graphs[i];
        if (g->exec && g->n == N && g->n_out == n_out) {
            g->used = ++c->tick;
            return cu_check(cudaGraphLaunch(g->exec, s), "decoder graph launch", e);
        }
        if (!g->exec && !free_slot)
            free_slot = g;
        if (g->used < oldest->used)
            oldest = g;
    }
    int seen = 0;
    for (int i = 0; i < DEC_SEEN_SLOTS && !seen; i++)
        seen = c->seen[i][0] == N && c->seen[i][1] == n_out;
    if (!seen) { // a shape run once is not worth a capture yet
        c->seen[c->seen_next % DEC_SEEN_SLOTS][0] = N;
        c->seen[c->seen_next % DEC_SEEN_SLOTS][1] = n_out;
        c->seen_next++;
        return run_layers(c, N, n_out, e);
    }
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    rg_err ce_err = {RG_OK, {0}};
    rg_status st = cu_check(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "begin capture", &ce_err);
    if (!st) {
        st = run_layers(c, N, n_out, &ce_err);
        rg_status end = cu_check(cudaStreamEndCapture(s, &graph), "end capture", st ? nullptr : &ce_err);
        if (!st)
            st = end;
    }
    if (!st)
        st = cu_check(cudaGraphInstantiate(&exec, graph, 0), "graph instantiate", &ce_err);
    if (graph)
        cudaGraphDestroy(graph);
    if (st) { // run it directly; later calls too
        cudaGetLastError();
        c->graphs_on = 0;
        LOG_WARN("CUDA decoder: CUDA graphs turned off (%s); steps are launched directly", ce_err.msg);
        return run_layers(c, N, n_out, e);
    }
    step_graph *slot = free_slot ? free_slot : oldest;
    if (slot->exec)
        cudaGraphExecDestroy(slot->exec);
    *slot = step_graph{N, n_out, exec, ++c->tick};
    return cu_check(cudaGraphLaunch(exec, s), "decoder graph launch", e);
}

extern "C" rg_status decoder_cuda_forward(rg_decoder_cuda *c, const rg_decoder *d, rg_kv_cache *const *kv,
                                          const int32_t *ids, const size_t *pos, size_t n, const size_t *out_rows,
                                          size_t n_out, float *logits, rg_err *e)
{
    if (n == 0)
        return RG_OK;
    if (n > 65535 || n_out > n)
        return rg_error(e, RG_ERR_INVALID, "CUDA decoder: %zu tokens in one call (at most 65535)", n);
    for (size_t t = 0; t < n; t++) {
        if (!kv[t]->on_device)
            return rg_error(e, RG_ERR_INVALID, "KV cache %zu was allocated for the CPU, the decoder runs on CUDA", t);
        if (pos[t] >= kv[t]->cap || pos[t] > (size_t)INT32_MAX)
            return rg_error(e, RG_ERR_INTERNAL, "CUDA decoder: position %zu outside its cache", pos[t]);
    }
    for (size_t i = 0; i < n_out; i++)
        if (out_rows[i] >= n)
            return rg_error(e, RG_ERR_INTERNAL, "CUDA decoder: logits row %zu of %zu tokens", out_rows[i], n);
    pthread_mutex_lock(&c->cx.mu);
    rg_status st = forward_locked(c, d, kv, ids, pos, n, out_rows, n_out, logits, e);
    if (st != RG_OK)
        cudaStreamSynchronize(c->cx.stream); // leave nothing in flight on the buffers
    pthread_mutex_unlock(&c->cx.mu);
    return st;
}

// ---- caches and inspection ----------------------------------------------------------------

extern "C" rg_status decoder_cuda_memory(rg_decoder_cuda *c, size_t *free_bytes, size_t *total_bytes, rg_err *e)
{
    rg_status st = cu_check(cudaSetDevice(c->cx.device), "cudaSetDevice", e);
    if (!st)
        st = cu_check(cudaMemGetInfo(free_bytes, total_bytes), "reading the GPU's free memory", e);
    return st;
}

extern "C" rg_status decoder_cuda_kv_alloc(size_t bytes, void **k, void **v, rg_err *e)
{
    *k = *v = nullptr;
    rg_status st = cu_check(cudaMalloc(k, bytes), "allocating a KV cache on the GPU", e);
    if (!st)
        st = cu_check(cudaMalloc(v, bytes), "allocating a KV cache on the GPU", e);
    if (st) {
        cudaGetLastError();
        cudaFree(*k);
        *k = nullptr;
        *v = nullptr;
    }
    return st;
}

extern "C" void decoder_cuda_kv_free(void *k, void *v)
{
    cudaFree(k);
    cudaFree(v);
}

extern "C" rg_status decoder_cuda_kv_copy(rg_decoder_cuda *c, void *dst_k, void *dst_v, size_t dst_pitch,
                                          const void *src_k, const void *src_v, size_t src_pitch, size_t bytes,
                                          size_t n_layer, rg_err *e)
{
    // on the decoder's stream, under its mutex, so a copy is ordered after
    // the forward pass that wrote the source and before the next one
    pthread_mutex_lock(&c->cx.mu);
    cudaStream_t s = c->cx.stream;
    rg_status st = cu_check(cudaSetDevice(c->cx.device), "cudaSetDevice", e);
    if (!st)
        st = cu_check(cudaMemcpy2DAsync(dst_k, dst_pitch, src_k, src_pitch, bytes, n_layer, cudaMemcpyDeviceToDevice,
                                        s), "copying KV cache keys", e);
    if (!st)
        st = cu_check(cudaMemcpy2DAsync(dst_v, dst_pitch, src_v, src_pitch, bytes, n_layer, cudaMemcpyDeviceToDevice,
                                        s), "copying KV cache values", e);
    if (!st)
        st = cu_check(cudaStreamSynchronize(s), "copying a KV cache", e);
    pthread_mutex_unlock(&c->cx.mu);
    return st;
}

extern "C" size_t decoder_cuda_graphs(rg_decoder_cuda *c)
{
    pthread_mutex_lock(&c->cx.mu);
    size_t n = 0;
    for (int i = 0; i < DEC_GRAPH_SLOTS; i++)
        n += c->graphs[i].exec != nullptr;
    pthread_mutex_unlock(&c->cx.mu);
    return n;
}

extern "C" size_t decoder_cuda_matrix_bytes(const rg_decoder_cuda *c)
{
    return c->matrix_bytes;
}

extern "C" int decoder_cuda_keeps_blocks(const rg_decoder_cuda *c, uint32_t type)
{
    return c->keep_blocks && (dec_cu_blocks_on_device(type) || (c->q8 && dec_cu_float_type(type)));
}

// One part's rows as floats: plain values widened, blocks unpacked by the
// device's own kernel (so the test sees what the products read).
static rg_status part_floats(rg_decoder_cuda *c, const dec_cu_part *p, size_t cols, float *out, rg_err *e)
{
    size_t n = (size_t)p->rows * cols;
    if (p->type == GGML_TYPE_F32)
        return cu_check(cudaMemcpy(out, p->w, n * sizeof(float), cudaMemcpyDeviceToHost), "weight download", e);
    if (p->type == GGML_TYPE_F16 || p->type == GGML_TYPE_BF16) {
        uint16_t *h = static_cast<uint16_t *>(malloc(n * sizeof(uint16_t)));
        if (!h)
            return rg_error(e, RG_ERR_NOMEM, "out of memory");
        rg_status st = cu_check(cudaMemcpy(h, p->w, n * sizeof(uint16_t), cudaMemcpyDeviceToHost), "weight download", e);
        for (size_t i = 0; !st && i < n; i++)
            out[i] = p->type == GGML_TYPE_F16 ? fp16_to_f32(h[i]) : bf16_to_f32(h[i]);
        free(h);
        return st;
    }
    float *dev = nullptr;
    rg_status st = cu_check(cudaMalloc((void **)&dev, n * sizeof(float)), "allocating an unpacked weight", e);
    if (!st)
        st = dec_cu_dequant(c->cx.stream, p->type, p->w, p->row_bytes, p->rows, (int)cols, dev, DEC_CU_F32, e);
    if (!st)
        st = cu_check(cudaStreamSynchronize(c->cx.stream), "unpacking a weight", e);
    if (!st)
        st = cu_check(cudaMemcpy(out, dev, n * sizeof(float), cudaMemcpyDeviceToHost), "weight download", e);
    if (st)
        cudaGetLastError();
    cudaFree(dev);
    return st;
}

extern "C" rg_status decoder_cuda_weight(rg_decoder_cuda *c, size_t layer, dec_cuda_weight which, float *out,
                                         size_t out_n, size_t *rows, size_t *cols, rg_err *e)
{
    const llama_config *cfg = &c->cfg;
    if (which != DEC_CUDA_W_OUTPUT && layer >= cfg->n_layer)
        return rg_error(e, RG_ERR_INVALID, "layer %zu of %zu", layer, cfg->n_layer);
    const dec_cu_mat *m;
    switch (which) {
    case DEC_CUDA_W_QKV: m = &c->layers[layer].wqkv; break;
    case DEC_CUDA_W_O: m = &c->layers[layer].wo; break;
    case DEC_CUDA_W_GATE_UP: m = &c->layers[layer].wgu; break;
    case DEC_CUDA_W_DOWN: m = &c->layers[layer].wdown; break;
    case DEC_CUDA_W_OUTPUT: m = &c->out_w; break;
    default: return rg_error(e, RG_ERR_INVALID, "unknown weight %d", (int)which);
    }
    *rows = (size_t)m->rows;
    *cols = (size_t)m->cols;
    if (out_n < *rows * *cols)
        return rg_error(e, RG_ERR_TOO_LARGE, "%zu values do not fit %zu", *rows * *cols, out_n);
    pthread_mutex_lock(&c->cx.mu);
    rg_status st = RG_OK;
    size_t at = 0;
    for (int i = 0; i < m->n_part && !st; i++) {
        st = part_floats(c, &m->part[i], *cols, out + at, e);
        at += (size_t)m->part[i].rows * *cols;
    }
    pthread_mutex_unlock(&c->cx.mu);
    return st;
}
