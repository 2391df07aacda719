"""Decode throughput of 16 concurrent chat requests with sampling (the
OpenAI default, temperature 1, unless --temperature says otherwise), for two
ragd binaries in the same run on the same machine and GGUF, alternated
(A, B, A, B, ...): the engine spends host time choosing each sequence's
token after every step, which this puts beside the decode itself.

Each request bans the end-of-sequence tokens (logit_bias) so all of them
run their max_tokens, and uses its own seed, so the token count and the
work are the same in every round.

Usage: .venv/bin/python bench/gen_sampling_serving.py --bin build/ragd --peer-bin OLD/ragd [--rounds 2]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))
from conftest import RagdServer  # noqa: E402
from gen_api_serving import QUESTIONS, timed_concurrently  # noqa: E402

END_TOKENS = ("0", "2")  # SmolLM2: <|endoftext|>, <|im_end|>


def chat(s, i, max_tokens, temperature, out):
    body = {"messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}], "max_tokens": max_tokens,
            "seed": 1000 + i, "logit_bias": {t: -100 for t in END_TOKENS}}
    if temperature is not None:
        body["temperature"] = temperature
    r = requests.post(s.url + "/v1/chat/completions", json=body, timeout=900)
    r.raise_for_status()
    out[i] = r.json()["usage"]["completion_tokens"]


def one_round(binary, model, tmp, n, max_tokens, temperature, http_threads):
    s = RagdServer(tmp / f"r{time.monotonic_ns()}", binary=binary,
                   extra_args=("--gen-model", model, "--threads", str(http_threads)))
    try:
        chat(s, 0, 4, temperature, {})  # warm
        out = {}
        wall, steps = timed_concurrently(s, [(chat, (s, i, max_tokens, temperature, out), {}) for i in range(n)])
    finally:
        s.stop()
    tokens = sum(out.values())
    assert tokens == n * max_tokens, f"{tokens} tokens, expected {n * max_tokens}"
    return tokens / wall, wall / steps * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--peer-bin", required=True)
    ap.add_argument("--model", default=str(REPO / "models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--temperature", type=float, default=None, help="default: not sent (the API's 1.0)")
    ap.add_argument("--http-threads", type=int, default=2,
                    help="ragd serve --threads (HTTP threads; non-streaming requests park, so few are needed); "
                    "the decoder takes the online CPUs")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ragd-bench-sampling-"))
    res = {"bin": [], "peer": []}
    for _ in range(args.rounds):
        for key, b in (("bin", args.bin), ("peer", args.peer_bin)):
            res[key].append(one_round(b, args.model, tmp, args.requests, args.max_tokens, args.temperature,
                                      args.http_threads))
    temp = "1 (default)" if args.temperature is None else args.temperature
    print(f"model {os.path.basename(args.model)}, {args.requests} concurrent chats x {args.max_tokens} tokens, "
          f"temperature {temp}, {args.http_threads} HTTP threads, {os.cpu_count()} CPUs, {args.rounds} rounds")
    for key, b in (("bin", args.bin), ("peer", args.peer_bin)):
        tps = [r[0] for r in res[key]]
        ms = [r[1] for r in res[key]]
        print(f"  {b}: {statistics.median(tps):7.1f} tokens/s (rounds: {', '.join(f'{t:.1f}' for t in tps)}), "
              f"{statistics.median(ms):6.1f} ms per step")
    print(f"  ratio: {statistics.median(r[0] for r in res['bin']) / statistics.median(r[0] for r in res['peer']):.2f}x")


if __name__ == "__main__":
    main()
