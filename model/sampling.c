#include "model/sampling.h"
#include "model/decoder_math.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void sampling_params_default(rg_sampling_params *p)
{
    memset(p, 0, sizeof *p);
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    p->repetition_penalty = 1.0f;
}

rg_status sampling_params_check(const rg_sampling_params *p, rg_err *e)
{
    /* NaN fails every comparison below, so it is refused too. */
    if (!(p->temperature >= 0.0f && p->temperature <= 100.0f))
        return rg_error(e, RG_ERR_INVALID, "temperature must be in [0, 100]");
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return rg_error(e, RG_ERR_INVALID, "top_p must be in (0, 1]");
    if (!(p->min_p >= 0.0f && p->min_p < 1.0f))
        return rg_error(e, RG_ERR_INVALID, "min_p must be in [0, 1)");
    if (!(p->repetition_penalty > 0.0f && p->repetition_penalty <= 100.0f))
        return rg_error(e, RG_ERR_INVALID, "repetition_penalty must be in (0, 100]");
    if (!(p->presence_penalty >= -2.0f && p->presence_penalty <= 2.0f))
        return rg_error(e, RG_ERR_INVALID, "presence_penalty must be in [-2, 2]");
    if (!(p->frequency_penalty >= -2.0f && p->frequency_penalty <= 2.0f))
        return rg_error(e, RG_ERR_INVALID, "frequency_penalty must be in [-2, 2]");
    if (p->n_bias > RG_SAMPLING_MAX_BIAS)
        return rg_error(e, RG_ERR_INVALID, "logit_bias has %zu entries; at most %d", p->n_bias, RG_SAMPLING_MAX_BIAS);
    for (size_t i = 0; i < p->n_bias; i++) {
        if (p->bias_id[i] < 0)
            return rg_error(e, RG_ERR_INVALID, "logit_bias token id %d is negative", (int)p->bias_id[i]);
        if (!(p->bias[i] >= -100.0f && p->bias[i] <= 100.0f))
            return rg_error(e, RG_ERR_INVALID, "logit_bias for token %d must be in [-100, 100]", (int)p->bias_id[i]);
    }
    return RG_OK;
}

rg_status sampling_bias_check(const rg_sampling_params *p, size_t n_vocab, rg_err *e)
{
    for (size_t i = 0; i < p->n_bias && i < RG_SAMPLING_MAX_BIAS; i++)
        if (p->bias_id[i] < 0 || (size_t)p->bias_id[i] >= n_vocab)
            return rg_error(e, RG_ERR_INVALID, "logit_bias token id %d is outside the vocabulary (0..%zu)",
                            (int)p->bias_id[i], n_vocab ? n_vocab - 1 : 0);
    return RG_OK;
}

/* ---- random numbers ------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void rng_seed(rg_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t rng_next(rg_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(rg_rng *r)
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- the sampler --------------------------------------------------------- */

struct rg_sampler {
    rg_sampling_params p;
    rg_rng rng;
    size_t n_vocab;
    uint32_t *generated; /* per token: times generated */
    uint8_t *seen;       /* per token: in the prompt or generated */
    /* the tokens with a nonzero entry above, so a step touches only them */
    int32_t *touched;
    size_t n_touched;
    /* scratch for the candidates of one step */
    int32_t *cand;
    float *prob;
};

rg_status sampler_new(const rg_sampling_params *p, size_t n_vocab, rg_sampler **out, rg_err *e)
{
    rg_status st = sampling_params_check(p, e);
    if (st)
        return st;
    if (n_vocab == 0 || n_vocab > ((size_t)1 << 24))
        return rg_error(e, RG_ERR_INVALID, "sampler vocabulary of %zu tokens", n_vocab);
    if ((st = sampling_bias_check(p, n_vocab, e)))
        return st;
    rg_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for a sampler");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->generated = calloc(n_vocab, sizeof *s->generated);
    s->seen = calloc(n_vocab, 1);
    s->touched = malloc(n_vocab * sizeof *s->touched);
    s->cand = malloc(n_vocab * sizeof *s->cand);
    s->prob = malloc(n_vocab * sizeof *s->prob);
    if (!s->generated || !s->seen || !s->touched || !s->cand || !s->prob) {
        sampler_free(s);
        return rg_error(e, RG_ERR_NOMEM, "out of memory for a sampler over %zu tokens", n_vocab);
    }
    rng_seed(&s->rng, p->seed);
    *out = s;
    return RG_OK;
}

void sampler_free(rg_sampler *s)
{
    if (!s)
        return;
    free(s->generated);
    free(s->seen);
    free(s->touched);
    free(s->cand);
    free(s->prob);
    free(s);
}

static void mark_seen(rg_sampler *s, int32_t id)
{
    if (!s->seen[id] && !s->generated[id])
        s->touched[s->n_touched++] = id;
    s->seen[id] = 1;
}

void sampler_add_prompt(rg_sampler *s, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && (size_t)ids[i] < s->n_vocab)
            mark_seen(s, ids[i]);
}

void sampler_accept(rg_sampler *s, int32_t id)
{
    if (id < 0 || (size_t)id >= s->n_vocab)
        return;
    mark_seen(s, id);
    if (s->generated[id] < UINT32_MAX)
        s->generated[id]++;
}

static void apply_penalties(const rg_sampler *s, float *logits)
{
    float rep = s->p.repetition_penalty, pres = s->p.presence_penalty, freq = s->p.frequency_penalty;
    for (size_t i = 0; i < s->n_touched; i++) {
        int32_t id = s->touched[i];
        float x = logits[id];
        if (rep != 1.0f && s->seen[id])
            x = x > 0 ? x / rep : x * rep;
        uint32_t c = s->generated[id];
        if (c)
            x -= pres + freq * (float)c;
        logits[id] = x;
    }
}

static int32_t argmax(const float *x, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return (int32_t)best;
}

/* Candidates sort by probability, descending, then by id. */
static int cand_cmp_ctx(const void *a, const void *b, const float *prob)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (prob[x] != prob[y])
        return prob[x] > prob[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* qsort has no context argument in C11 and a file-local pointer would be
 * state shared between threads, so candidates are heap-sorted here with
 * the probabilities passed along. sift restores the heap a[0..n) below
 * root: with sign 1 its root is the candidate that comes last in
 * cand_cmp_ctx's order (for sorting in place, and for select_top's "worst
 * of the best k"), with sign -1 the one that comes first (popped in
 * order by draw). */
static void sift(int32_t *a, size_t root, size_t n, const float *prob, int sign)
{
    while (2 * root + 1 < n) {
        size_t child = 2 * root + 1, top = root;
        if (sign * cand_cmp_ctx(&a[child], &a[top], prob) > 0)
            top = child;
        if (child + 1 < n && sign * cand_cmp_ctx(&a[child + 1], &a[top], prob) > 0)
            top = child + 1;
        if (top == root)
            return;
        int32_t t = a[root];
        a[root] = a[top];
        a[top] = t;
        root = top;
    }
}

static void sort_candidates(int32_t *a, size_t n, const float *prob)
{
    if (n < 2)
        return;
    for (size_t start = n / 2; start-- > 0;)
        sift(a, start, n, prob, 1);
    for (size_t end = n - 1; end > 0; end--) {
        int32_t t = a[0];
        a[0] = a[end];
        a[end] = t;
        sift(a, 0, end, prob, 1);
    }
}

/* Keeps the k best of a[0..n) in a[0..k), in no particular order: a heap
 * of the k best so far whose root is the worst of them, O(n log k). */
static void select_top(int32_t *a, size_t n, size_t k, const float *prob)
{
    for (size_t start = k / 2; start-- > 0;)
        sift(a, start, k, prob, 1);
    for (size_t i = k; i < n; i++)
        if (cand_cmp_ctx(&a[i], &a[0], prob) < 0) {
            int32_t t = a[0];
            a[0] = a[i];
            a[i] = t;
            sift(a, 0, k, prob, 1);
        }
}

/* Moves the candidates of probability at least cut to the front of
 * cand[0..n) (in no particular order) and returns their count; *mass (may
 * be NULL) gets their summed probability. */
static size_t partition_at(int32_t *cand, size_t n, const float *prob, float cut, double *mass)
{
    size_t m = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        if (prob[cand[i]] >= cut) {
            int32_t t = cand[m];
            cand[m] = cand[i];
            cand[i] = t;
            sum += prob[cand[m]];
            m++;
        }
    if (mass)
        *mass = sum;
    return m;
}

static float best_prob(const int32_t *cand, size_t n, const float *prob)
{
    float best = 0;
    for (size_t i = 0; i < n; i++)
        if (prob[cand[i]] > best)
            best = prob[cand[i]];
    return best;
}

/* The head of the order by probability: the candidates of probability at
 * least 2^-13 of the best, moved to the front (sorting them alone is
 * sorting that prefix). */
static size_t partition_head(int32_t *cand, size_t n, const float *prob, double *mass)
{
    return partition_at(cand, n, prob, best_prob(cand, n, prob) * 0x1p-13f, mass);
}

/* Draws from cand[0..n) (weights prob, summing to total; u uniform in
 * [0, total)), walking the candidates in a fixed order, by probability
 * then id, so that the same seed picks the same token whatever order
 * selection left them in. Sorting a whole 49K vocabulary costs ~6-10 ms,
 * at every step of every sequence with the default temperature 1, so the
 * walk goes band by band: the head (at least 2^-13 of the best, where
 * most draws end), then bands each 16 times below the last, each
 * partitioned out of the rest. Every candidate of a band is more probable
 * than every one after it, so the bands in turn are the full order. Within
 * a band the walk pops a heap (first in order at the root) rather than
 * sorting it: a draw that ends at the k-th candidate of a band of m costs
 * O(m + k log m), and the order popped is the sorted one. The walk, its
 * sums and the token are exactly those of a walk over the fully sorted
 * candidates (test_sampling's test_draw_order). */
static int32_t draw(int32_t *cand, size_t n, const float *prob, double u)
{
    float cut = best_prob(cand, n, prob) * 0x1p-13f;
    double cum = 0;
    size_t start = 0;
    int32_t last = cand[n - 1];
    while (start < n) {
        /* the last band takes the rest (also candidates whose probability
         * compares with nothing, NaN, which no cut would ever take) */
        size_t m = cut > 0 ? partition_at(cand + start, n - start, prob, cut, NULL) : n - start;
        int32_t *band = cand + start;
        for (size_t i = m / 2; i-- > 0;)
            sift(band, i, m, prob, -1);
        for (size_t left = m; left > 0; left--) {
            int32_t c = band[0];
            cum += prob[c];
            if (u < cum)
                return c;
            last = c;
            band[0] = band[left - 1]; /* popped: the heap shrinks from its end */
            band[left - 1] = c;
            sift(band, 0, left - 1, prob, -1);
        }
        start += m;
        cut *= 0x1p-4f; /* reaches 0 past the subnormals */
    }
    return last; /* rounding left u past the last candidate's sum */
}

int32_t sampler_sample(rg_sampler *s, float *logits)
{
    size_t n = s->n_vocab;
    for (size_t i = 0; i < s->p.n_bias; i++)
        logits[s->p.bias_id[i]] += s->p.bias[i];
    apply_penalties(s, logits);
    if (s->p.temperature == 0.0f)
        return argmax(logits, n);

    /* Tempered softmax over the whole vocabulary (top_k below works on the
     * same order, since dividing by a positive temperature keeps it). */
    float inv_t = 1.0f / s->p.temperature, max = -FLT_MAX;
    for (size_t i = 0; i < n; i++) {
        logits[i] *= inv_t;
        if (logits[i] > max)
            max = logits[i];
    }
    float *prob = s->prob;
    int32_t *cand = s->cand;
    for (size_t i = 0; i < n; i++) {
        prob[i] = logits[i] - max;
        cand[i] = (int32_t)i;
    }
    /* ggml's vector exp, 8 lanes at a time with AVX2 and the same values
     * without (libm's expf over 49K logits was most of a draw's time) */
    dec_math_exp(prob, prob, n);
    size_t nc = n;
    if (s->p.top_k && s->p.top_k < nc) {
        select_top(cand, nc, s->p.top_k, prob);
        nc = s->p.top_k;
    }
    double total = 0;
    for (size_t i = 0; i < nc; i++)
        total += prob[cand[i]];

    if (s->p.top_p < 1.0f) {
        /* The nucleus is a prefix of the candidates sorted by probability.
         * Sorting the whole vocabulary every step is slow, so first sort
         * only those above a small fraction of the best: they are the top
         * of the order, and when their mass reaches top_p the nucleus lies
         * among them. Otherwise sort everything. */
        double head;
        size_t m = partition_head(cand, nc, prob, &head);
        double want = (double)s->p.top_p * total;
        if (head < want)
            m = nc;
        sort_candidates(cand, m, prob);
        double cum = 0;
        size_t keep = 0;
        while (keep < m) {
            cum += prob[cand[keep++]];
            if (cum >= want)
                break;
        }
        nc = keep;
        total = cum;
    }
    if (s->p.min_p > 0.0f) {
        float best = 0;
        for (size_t i = 0; i < nc; i++)
            if (prob[cand[i]] > best)
                best = prob[cand[i]];
        float floor_p = best * s->p.min_p;
        size_t m = 0;
        total = 0;
        for (size_t i = 0; i < nc; i++)
            if (prob[cand[i]] >= floor_p) {
                cand[m++] = cand[i];
                total += prob[cand[i]];
            }
        nc = m;
    }
    if (nc == 0) /* every probability NaN (a broken model's logits): a valid id, not cand[-1] */
        return argmax(logits, n);
    return draw(cand, nc, prob, rng_uniform(&s->rng) * total);
}

void sampling_logprobs(const float *logits, size_t n, int32_t chosen, float *chosen_lp, rg_token_logprob *top,
                       size_t top_n)
{
    float max = -FLT_MAX;
    for (size_t i = 0; i < n; i++)
        if (logits[i] > max)
            max = logits[i];
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += exp((double)logits[i] - max);
    double lse = max + log(sum);
    if (chosen_lp)
        *chosen_lp = chosen >= 0 && (size_t)chosen < n ? (float)(logits[chosen] - lse) : -INFINITY;
    if (top_n > n)
        top_n = n;
    /* Insertion into a short sorted list: top_n is at most 20. */
    size_t have = 0;
    for (size_t i = 0; i < n && top_n; i++) {
        float x = logits[i];
        if (have == top_n && x <= top[have - 1].logprob)
            continue;
        size_t j = have < top_n ? have++ : top_n - 1;
        while (j > 0 && top[j - 1].logprob < x) {
            top[j] = top[j - 1];
            j--;
        }
        top[j].id = (int32_t)i;
        top[j].logprob = x;
    }
    for (size_t i = 0; i < have; i++)
        top[i].logprob = (float)(top[i].logprob - lse);
}
