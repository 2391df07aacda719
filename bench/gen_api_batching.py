#!/usr/bin/env python3
"""Checks continuous batching end to end: N concurrent streaming chat
requests against a running `ragd serve` with a generator, printing tokens/s
and the decode steps the engine took (from /v1/metrics). With batching, N
streams of T tokens take about T steps, not N*T.

Usage: bench/gen_api_batching.py [URL] (default http://127.0.0.1:8000)
Needs requests (the test venv has it). Not a speed benchmark against a
peer: the generator's benchmark against llama.cpp is separate."""
import json
import sys
import threading
import time

import requests

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
TOKENS = 64


def steps():
    text = requests.get(URL + "/v1/metrics", timeout=30).text
    return int(float([l for l in text.splitlines() if l.startswith("ragd_generator_steps_total")][0].split()[1]))


def one(question, out):
    body = {
        "messages": [{"role": "user", "content": question}],
        "max_tokens": TOKENS,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    usage = None
    with requests.post(URL + "/v1/chat/completions", json=body, stream=True, timeout=600) as r:
        for line in r.iter_lines():
            if line.startswith(b"data: {"):
                d = json.loads(line[6:])
                usage = d.get("usage") or usage
    out.append(usage["completion_tokens"])


def run(n):
    out = []
    threads = [threading.Thread(target=one, args=(f"Write a long story number {i} about a lighthouse.", out))
               for i in range(n)]
    s0, t0 = steps(), time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(out), time.time() - t0, steps() - s0


for n in (1, 16):
    tok, dt, st = run(n)
    print(f"{n} concurrent streams: {tok} tokens in {dt:.2f} s = {tok / dt:.1f} tokens/s, {st} decode steps")
