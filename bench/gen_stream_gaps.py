#!/usr/bin/env python3
"""How smoothly streams flow when more clients stream than the engine
batches: N concurrent streaming chats (default 64, four times the default
--gen-max-seqs, so most wait queued at first) of T tokens each (the end
tokens banned, so every stream runs its T), against one or more running
`ragd serve` instances, alternated R times. Prints the wall time, the
engine's decode steps and mean step time (from /v1/metrics), and the gaps
between a stream's consecutive content chunks: a median near the step time
and a p90/p99 close to it mean no stream is held up by another's wait.

Usage: bench/gen_stream_gaps.py [--streams N] [--tokens T] [--repeat R] URL[=LABEL] ...
Needs requests (the test venv has it). Each URL must serve SmolLM2 (ids 0
and 2 are its end tokens) or a model where those two ids are harmless."""
import argparse
import json
import statistics
import threading
import time

import requests


def steps(url):
    text = requests.get(url + "/v1/metrics", timeout=30).text
    return int(float([l for l in text.splitlines() if l.startswith("ragd_generator_steps_total")][0].split()[1]))


def stream(url, i, tokens, out):
    body = {"messages": [{"role": "user", "content": f"Tell story number {i} about a lighthouse."}],
            "max_tokens": tokens, "temperature": 0, "stream": True, "logit_bias": {"0": -100, "2": -100}}
    times = []
    with requests.post(url + "/v1/chat/completions", json=body, stream=True, timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith(b"data: {"):
                ch = json.loads(line[6:])["choices"]
                if ch and ch[0]["delta"].get("content"):
                    times.append(time.monotonic())
    out[i] = times


def run(url, n, tokens):
    out = [None] * n
    threads = [threading.Thread(target=stream, args=(url, i, tokens, out)) for i in range(n)]
    s0, t0 = steps(url), time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, st = time.monotonic() - t0, steps(url) - s0
    gaps = sorted(b - a for times in out for a, b in zip(times, times[1:]))
    pct = lambda q: gaps[min(len(gaps) - 1, int(q * len(gaps)))] * 1000  # noqa: E731
    return (f"{wall:6.1f} s, {st} steps ({wall / st * 1000:.0f} ms a step); gaps ms: median "
            f"{statistics.median(gaps) * 1000:.0f}, p90 {pct(0.9):.0f}, p99 {pct(0.99):.0f}, max {gaps[-1] * 1000:.0f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("urls", nargs="+")
    a = ap.parse_args()
    print(f"{a.streams} streams x {a.tokens} tokens")
    for _ in range(a.repeat):
        for u in a.urls:
            url, _, label = u.partition("=")
            print(f"{label or url:>12}: {run(url.rstrip('/'), a.streams, a.tokens)}", flush=True)


if __name__ == "__main__":
    main()
