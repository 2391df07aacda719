"""Generation throughput of a running ragd server as its clients see it:
N concurrent chat requests of max_tokens tokens each (end tokens banned by
logit_bias, so every request runs its length; a seed each), once with the
API's default sampling (temperature 1, not sent) and once greedy. Prints
one JSON line per run: tokens/s over the wall time, the engine's decode
steps and ms per step (from /v1/metrics). Standard library only: the GPU
machine runs it beside build_and_test.sh's generator server.

Usage: python3 scripts/gpu/serve_throughput.py URL [--requests 16] [--max-tokens 64]
"""

import argparse
import json
import sys
import threading
import time
import urllib.request

END_TOKENS = ("0", "2")  # SmolLM2: <|endoftext|>, <|im_end|>


def post(url, body, timeout):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=timeout).read().decode())


def steps(base):
    text = urllib.request.urlopen(base + "/v1/metrics", timeout=30).read().decode()
    for line in text.splitlines():
        if line.startswith("ragd_generator_steps_total"):
            return float(line.split()[-1])
    return 0.0


def run(base, n, max_tokens, temperature, timeout):
    got, errors = {}, []

    def one(i):
        body = {"messages": [{"role": "user", "content": f"Tell me a long story about the number {i}."}],
                "max_tokens": max_tokens, "seed": 100 + i, "logit_bias": {t: -100 for t in END_TOKENS}}
        if temperature is not None:
            body["temperature"] = temperature
        try:
            got[i] = post(base + "/v1/chat/completions", body, timeout)["usage"]["completion_tokens"]
        except Exception as e:  # reported, and the run fails
            errors.append(f"request {i}: {e}")

    s0, t0 = steps(base), time.monotonic()
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall, n_steps = time.monotonic() - t0, steps(base) - s0
    tokens = sum(got.values())
    return {"requests": n, "max_tokens": max_tokens, "temperature": 1.0 if temperature is None else temperature,
            "tokens": tokens, "seconds": round(wall, 3), "tokens_per_s": round(tokens / wall, 1),
            "steps": n_steps, "ms_per_step": round(wall / n_steps * 1000, 3) if n_steps else None,
            "errors": errors}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    base = args.url.rstrip("/")
    ok = True
    for temperature in (None, 0.0):
        r = run(base, args.requests, args.max_tokens, temperature, args.timeout)
        print(json.dumps(r))
        ok = ok and not r["errors"] and r["tokens"] == args.requests * args.max_tokens
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
