#!/usr/bin/env python3
"""llama.cpp's decoder speed on the GPU: the peer of bench/bench_decode_device
for issue 5 (ragd's CUDA decoder against llama.cpp at 16 sequences, same GPU,
same run). Runs THERE, on the GPU machine, under scripts/gpu/run_peer.sh, with
llama-cpp-python built by scripts/gpu/build_llama_peer.sh (CUDA, sm_90).

    bench_decode_peer.py MODEL IDS_FILE [--gen 128] [--seqs 16]
                         [--flash-attn off,on] [--prompt 512] [--threads T]
                         [--ragd-json FILE] [--allow-cpu] [--verbose]

MODEL is the same GGUF bench_decode_device reads; IDS_FILE the same prompt
token ids (whitespace-separated, the first --prompt (512) used), or the golden
fixture tests/fixtures/llama_golden.jsonl itself, whose "ids" are then joined
in file order exactly as scripts/gpu/build_and_test.sh makes its .ids512.

llama.cpp runs with every layer offloaded (n_gpu_layers = all, the output
layer included; the script checks llama.cpp's "offloaded N/N layers" line) and
an f16 KV cache (llama.cpp's default; ragd's CUDA bench uses RG_KV_F16 too).
It refuses to run when llama.cpp has no GPU device, unless --allow-cpu (for
testing the script on a machine without a GPU only; the JSON then says
"device": "cpu").

What is measured: the definitions of bench_decode_device, one for one.
  prompt_tps   prompt tokens / the median of 5 prefills of the whole prompt
               into an emptied cache (llama_memory_clear), after a warm-up
               (one prefill and one 1-token decode). A prefill is one
               llama_decode of all prompt tokens (n_batch = n_ubatch >= prompt,
               so one ubatch), logits for the last token only, up to the
               moment those logits are on the host (llama_synchronize, then
               llama_get_logits_ith: llama_decode itself may return before the
               GPU has finished).
  ttft_ms      the same prefill plus the greedy pick (argmax of the host
               logits), median of 5.
  gen_tps_1, step_ms_1   --gen greedy steps of one sequence continuing after
               the last prefill: per step, one llama_decode of one token until
               its logits are on the host. The next token's argmax and the
               filling of llama_batch (Python) are outside the timer, as the
               argmax is in bench_decode_device.
  gen_tps_n, step_ms_n   N = --seqs sequences each holding the same prompt,
               then --gen steps that each decode one token of every sequence in
               ONE llama_decode (token i has seq_id i, logits for all N), timed
               up to all N rows of logits on the host; tokens/s = N x gen / time.
               The context has n_seq_max = N and llama.cpp's default
               non-unified cache (kv_unified false), so each sequence attends to
               its own stream only, as each of ragd's sequences has its own
               cache (the same set-up as bench/bench_decode.py's CPU peer).
               Untimed: filling the caches (sequence 0 prefilled, its cells
               copied to the others with llama_memory_seq_cp) and one warm-up
               step of N tokens that is then removed (llama_memory_seq_rm), so
               the timed steps do not pay the new graph's first-run cost.
  model_bytes  llama_model_size: bytes of all the model's tensors as llama.cpp
               holds them (Q4_1 blocks, as stored in the GGUF: llama.cpp reads
               quantized weights; ragd's weight_bytes counts only the weight
               matrices, the token embedding table it reads on the host
               excluded, so these are named differently); model_gbps_1/n =
               model_bytes / step time.
  seqs_matching_1seq   sequences of the batched run whose greedy tokens equal
               the 1-seq run's (a check; all N unless batching moves a
               near-tie).
  *_median     step_ms_1_median/step_ms_n_median: the median step, beside
               the mean that the tokens/s use.

Flash attention: llama.cpp's context flag flash_attn (a bool in this
version). Each setting in --flash-attn (default both "off,on") is measured on
its own contexts; all appear under "by_flash_attn", and the top-level figures
are those of the setting with the higher gen_tps_n (the issue's criterion),
named in "flash_attn".

Output: one JSON line on stdout with bench_decode_device's field names where
they mean the same (device, device_description, prompt_tokens, prompt_tps,
ttft_ms, gen_tokens, gen_tps_1, step_ms_1, n_seq, gen_tps_n, step_ms_n), plus
"engine": "llama.cpp" and the fields above. With --ragd-json FILE (a file
holding bench_decode_device's JSON line; the last such line is used) a
"ratio_ragd_over_llama_cpp" object is added: prompt_tps, gen_tps_1, gen_tps_n
(> 1: ragd faster) and ttft_ms (< 1: ragd faster), and a readable table goes to
stderr.
"""
import argparse
import ctypes
import json
import os
import re
import statistics
import sys
import time

REPS = 5


def die(msg, code=1):
    print(f"bench_decode_peer: {msg}", file=sys.stderr)
    sys.exit(code)


def read_ids(path, n):
    """The prompt's token ids: IDS_FILE's first n whitespace-separated ids, or,
    for the golden .jsonl fixture, its "ids" joined in file order (as
    build_and_test.sh makes .ids512)."""
    with open(path) as f:
        text = f.read()
    if path.endswith(".jsonl"):
        ids = [i for line in text.splitlines() if line.strip() for i in json.loads(line).get("ids", [])]
    else:
        ids = [int(t) for t in text.split()]
    if not ids:
        die(f"no token ids in {path}")
    return ids[:n]


class Logs:
    """llama.cpp's log lines (llama_log_set also sets ggml's callback): kept to
    read the offload count; echoed to stderr with --verbose."""

    def __init__(self, llama_cpp, echo):
        self.lines, self.echo = [], echo
        self._cb = llama_cpp.llama_log_callback(self._on)  # referenced: must outlive the library's use
        llama_cpp.llama_log_set(self._cb, ctypes.c_void_p(0))

    def _on(self, level, text, user_data):
        s = text.decode("utf-8", "replace") if text else ""
        self.lines.append(s)
        if self.echo:
            sys.stderr.write(s)

    def text(self):
        return "".join(self.lines)


def backend_devices(llama_cpp):
    """[(name, description, type)] from ggml's backend registry (types: 0 CPU,
    1 GPU, 2 ACCEL in this ggml)."""
    lib = llama_cpp.llama_cpp._lib  # libllama; ggml's symbols resolve through its dependencies
    count = lib.ggml_backend_dev_count
    count.restype, count.argtypes = ctypes.c_size_t, []
    get = lib.ggml_backend_dev_get
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    name = lib.ggml_backend_dev_name
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
    desc = lib.ggml_backend_dev_description
    desc.restype, desc.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
    typ = lib.ggml_backend_dev_type
    typ.restype, typ.argtypes = ctypes.c_int, [ctypes.c_void_p]
    out = []
    for i in range(count()):
        d = get(i)
        out.append((name(d).decode(), desc(d).decode(), typ(d)))
    return out


class Ctx:
    """A llama_context with its own llama_batch, for one flash-attention setting."""

    def __init__(self, llama_cpp, model, n_ctx, n_seq, n_batch, flash_attn, threads):
        lc = self.lc = llama_cpp
        p = lc.llama_context_default_params()
        p.n_ctx = n_ctx
        p.n_batch = p.n_ubatch = n_batch
        p.n_seq_max = n_seq
        p.kv_unified = False
        p.flash_attn = flash_attn
        p.offload_kqv = True
        if threads:
            p.n_threads = p.n_threads_batch = threads
        self.ctx = lc.llama_init_from_model(model, p)
        if not self.ctx:
            die(f"llama.cpp: cannot make a context (n_ctx {n_ctx}, {n_seq} sequences, flash_attn {flash_attn})")
        if lc.llama_n_seq_max(self.ctx) < n_seq:
            die(f"llama.cpp: context holds only {lc.llama_n_seq_max(self.ctx)} sequences")
        self.mem = lc.llama_get_memory(self.ctx)
        self.batch = lc.llama_batch_init(n_batch, 0, 1)
        self.n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(model))

    def put(self, i, tok, pos, seq, want_logits):
        b = self.batch
        b.token[i] = tok
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = want_logits

    def decode(self, n_tokens):
        """One llama_decode of the batch's first n_tokens, waited for."""
        self.batch.n_tokens = n_tokens
        rc = self.lc.llama_decode(self.ctx, self.batch)
        if rc != 0:
            die(f"llama.cpp: llama_decode returned {rc}")
        self.lc.llama_synchronize(self.ctx)

    def last_logits(self):
        import numpy as np

        return np.ctypeslib.as_array(self.lc.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))

    def all_logits(self, rows):
        import numpy as np

        return np.ctypeslib.as_array(self.lc.llama_get_logits(self.ctx), shape=(rows, self.n_vocab))

    def put_prompt(self, ids, seq=0):
        for i, t in enumerate(ids):
            self.put(i, t, i, seq, i == len(ids) - 1)

    def free(self):
        self.lc.llama_batch_free(self.batch)
        self.lc.llama_free(self.ctx)


def measure(lc, model, ids, n_gen, n_seq, flash_attn, threads):
    """bench_decode_device's figures for one flash-attention setting."""
    import numpy as np

    n = len(ids)
    res = {}
    # --- one sequence: prefill (prompt_tps, ttft) and greedy steps (gen_tps_1)
    c = Ctx(lc, model, n + n_gen + 8, 1, max(n, 1), flash_attn, threads)
    try:
        c.put_prompt(ids)  # warm-up: one prefill, one decode
        c.decode(n)
        tok = int(np.argmax(c.last_logits()))
        c.put(0, tok, n, 0, True)
        c.decode(1)
        prefill, ttft = [], []
        for _ in range(REPS):
            lc.llama_memory_clear(c.mem, True)
            c.put_prompt(ids)
            t0 = time.perf_counter()
            c.decode(n)
            lg = c.last_logits()
            t1 = time.perf_counter()
            tok = int(np.argmax(lg))
            ttft.append((time.perf_counter() - t0) * 1e3)
            prefill.append(t1 - t0)
        toks1 = [tok]
        steps1 = []
        for i in range(n_gen):
            c.put(0, tok, n + i, 0, True)
            t0 = time.perf_counter()
            c.decode(1)
            lg = c.last_logits()
            steps1.append(time.perf_counter() - t0)
            tok = int(np.argmax(lg))
            toks1.append(tok)
    finally:
        c.free()
    t_prefill = statistics.median(prefill)
    res.update(prompt_tokens=n, prompt_tps=round(n / t_prefill, 1), ttft_ms=round(statistics.median(ttft), 2),
               gen_tokens=n_gen, gen_tps_1=round(n_gen / sum(steps1), 1),
               step_ms_1=round(sum(steps1) / n_gen * 1e3, 3),
               step_ms_1_median=round(statistics.median(steps1) * 1e3, 3))

    # --- N sequences decoded together (gen_tps_n)
    c = Ctx(lc, model, n_seq * (n + n_gen + 8), n_seq, max(n, n_seq), flash_attn, threads)
    try:
        c.put_prompt(ids, 0)
        c.decode(n)
        first = int(np.argmax(c.last_logits()))
        for s in range(1, n_seq):
            lc.llama_memory_seq_cp(c.mem, 0, s, -1, -1)
        for s in range(n_seq):
            if lc.llama_memory_seq_pos_max(c.mem, s) != n - 1:
                die(f"llama.cpp: sequence {s} does not hold the prompt after the copy")
        # warm-up step of N tokens, then removed: the caches hold the prompt again
        for s in range(n_seq):
            c.put(s, first, n, s, True)
        c.decode(n_seq)
        for s in range(n_seq):
            if not lc.llama_memory_seq_rm(c.mem, s, n, -1):
                die(f"llama.cpp: cannot remove the warm-up token of sequence {s}")
            if lc.llama_memory_seq_pos_max(c.mem, s) != n - 1:
                die(f"llama.cpp: sequence {s} does not hold just the prompt after the warm-up")
        toks = np.full(n_seq, first, dtype=np.int64)
        out = [[first] for _ in range(n_seq)]
        stepsn = []
        for i in range(n_gen):
            for s in range(n_seq):
                c.put(s, int(toks[s]), n + i, s, True)
            t0 = time.perf_counter()
            c.decode(n_seq)
            lg = c.all_logits(n_seq)
            stepsn.append(time.perf_counter() - t0)
            toks = np.argmax(lg, axis=1)
            for s in range(n_seq):
                out[s].append(int(toks[s]))
    finally:
        c.free()
    res.update(n_seq=n_seq, gen_tps_n=round(n_gen * n_seq / sum(stepsn), 1),
               step_ms_n=round(sum(stepsn) / n_gen * 1e3, 3),
               step_ms_n_median=round(statistics.median(stepsn) * 1e3, 3),
               seqs_matching_1seq=sum(o == toks1 for o in out))
    return res


def ragd_line(path):
    """The last bench_decode_device JSON line in path."""
    found = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    d = json.loads(line)
                except ValueError:
                    continue
                if "gen_tps_n" in d:
                    found = d
    if found is None:
        die(f"no bench_decode_device JSON line in {path}")
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("ids_file")
    ap.add_argument("--gen", type=int, default=int(os.environ.get("GEN_STEPS", "128")))
    ap.add_argument("--seqs", type=int, default=16)
    ap.add_argument("--prompt", type=int, default=512, help="ids used from IDS_FILE (bench_decode_device: 512)")
    ap.add_argument("--flash-attn", default="off,on", help="settings to measure: off, on or off,on")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: llama.cpp's default)")
    ap.add_argument("--ragd-json", help="file with bench_decode_device's JSON line: add ragd / llama.cpp ratios")
    ap.add_argument("--allow-cpu", action="store_true", help="TESTING ONLY: run on the CPU when no GPU is seen")
    ap.add_argument("--verbose", action="store_true", help="echo llama.cpp's log to stderr")
    args = ap.parse_args()
    fa_settings = [s.strip() for s in args.flash_attn.split(",") if s.strip()]
    if not fa_settings or any(s not in ("off", "on") for s in fa_settings):
        die("--flash-attn takes off, on or off,on", 2)
    if args.gen < 1 or args.seqs < 1 or args.prompt < 1:
        die("--gen, --seqs and --prompt must be >= 1", 2)
    ids = read_ids(args.ids_file, args.prompt)

    import llama_cpp as lc

    logs = Logs(lc, args.verbose)
    lc.llama_backend_init()
    devs = backend_devices(lc)
    gpus = [d for d in devs if d[2] == 1]
    print(f"bench_decode_peer: llama-cpp-python {lc.__version__}, ggml devices: "
          + ", ".join(f"{n} ({d})" for n, d, _ in devs), file=sys.stderr)
    if not gpus or not lc.llama_supports_gpu_offload():
        if not args.allow_cpu:
            die("llama.cpp sees no GPU device (devices: " + ", ".join(n for n, _, _ in devs)
                + "): refusing to benchmark the CPU as the GPU peer", 3)
        print("bench_decode_peer: --allow-cpu: NO GPU, measuring the CPU (a test of this script only)",
              file=sys.stderr)

    mp = lc.llama_model_default_params()
    mp.n_gpu_layers = 0x7FFFFFFF if gpus else 0  # all layers, the output layer too
    model = lc.llama_model_load_from_file(args.model.encode(), mp)
    if not model:
        die(f"llama.cpp cannot load {args.model}")
    offload = re.findall(r"offloaded (\d+)/(\d+) layers to GPU", logs.text())
    if gpus:
        if not offload or offload[-1][0] != offload[-1][1]:
            die(f"llama.cpp did not offload every layer: {offload[-1] if offload else 'no offload line in its log'}")
    try:
        by_fa = {}
        for s in fa_settings:
            by_fa[s] = measure(lc, model, ids, args.gen, args.seqs, s == "on", args.threads)
            print(f"bench_decode_peer: flash_attn {s}: " + json.dumps(by_fa[s]), file=sys.stderr)
        best = max(by_fa, key=lambda s: by_fa[s]["gen_tps_n"])
        top = dict(by_fa[best])
        model_bytes = int(lc.llama_model_size(model))
    finally:
        lc.llama_model_free(model)

    res = {"device": "cuda" if gpus else "cpu",
           "device_description": gpus[0][1] if gpus else next((d for _, d, t in devs if t == 0), "cpu"),
           "engine": "llama.cpp", "llama_cpp_python": lc.__version__,
           "flash_attn": best}
    res.update(top)
    res.update(model_bytes=model_bytes,
               model_gbps_1=round(model_bytes / (top["step_ms_1"] / 1e3) / 1e9, 1),
               model_gbps_n=round(model_bytes / (top["step_ms_n"] / 1e3) / 1e9, 1),
               layers_offloaded="/".join(offload[-1]) if offload else "0",
               gpu_devices=[n for n, _, _ in gpus], by_flash_attn=by_fa)
    if args.ragd_json:
        r = ragd_line(args.ragd_json)
        ratio = {k: round(r[k] / top[k], 3) for k in ("prompt_tps", "gen_tps_1", "gen_tps_n", "ttft_ms")
                 if r.get(k) and top.get(k)}
        res["ratio_ragd_over_llama_cpp"] = ratio
        res["ragd_beats_llama_cpp_at_n"] = bool(ratio.get("gen_tps_n", 0) > 1)
        if r.get("n_seq") != top["n_seq"] or r.get("gen_tokens") != top["gen_tokens"] \
                or r.get("prompt_tokens") != top["prompt_tokens"]:
            res["note"] = ("ragd's run used other sizes: n_seq %s, gen_tokens %s, prompt_tokens %s"
                           % (r.get("n_seq"), r.get("gen_tokens"), r.get("prompt_tokens")))
        print(f"{'':26}{'ragd':>10}{'llama.cpp':>11}{'ratio':>8}", file=sys.stderr)
        for k, label in (("prompt_tps", "prompt tokens/s"), ("ttft_ms", "TTFT ms (lower better)"),
                         ("gen_tps_1", "gen tokens/s (1 seq)"), ("gen_tps_n", f"gen tokens/s ({top['n_seq']} seqs)")):
            if k in ratio:
                print(f"{label:26}{r[k]:10.1f}{top[k]:11.1f}{ratio[k]:8.2f}", file=sys.stderr)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
