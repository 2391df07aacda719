"""Serving figures of ragd's generator through the API, each beside a peer
measured in the same run on the same machine and GGUF:

1. 16 concurrent NON-streaming chat requests (max_tokens 32): engine decode
   steps and wall time, against the same 16 requests sent one at a time.
2. A stream decoding while a ~800-token prompt arrives: the longest stall
   between its chunks and the new prompt's time to its answer, with chunked
   prefill (--gen-prefill-tokens 256 and 64) against the whole prompt in one
   step (--gen-prefill-tokens 2048).

Usage: RAGD_BIN=build/ragd .venv/bin/python bench/gen_api_serving.py [--model GGUF]
"""

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))
from conftest import RagdServer, metric_values  # noqa: E402

QUESTIONS = [
    "What is the capital of France?", "Write a haiku about the sea.", "List three primary colours.",
    "Explain what a CPU does in one sentence.", "Translate 'good morning' into Spanish.", "What is 12 times 12?",
    "Name a famous painter.", "What colour is the sky on a clear day?", "Give me a synonym for happy.",
    "How many legs does a spider have?", "What do bees make?", "Suggest a name for a pet cat.",
    "What is the opposite of cold?", "Which planet is known as the red planet?",
    "What language is spoken in Brazil?", "Write one sentence about autumn.",
]


def metric(s, name):
    v = metric_values(s.metrics().text, name)
    return v[0][1] if v else None


def timed_concurrently(s, calls):
    """Runs each (function, args, kwargs) of calls on its own thread; returns
    the wall seconds and the generator steps the server took meanwhile."""
    st0, t0 = metric(s, "ragd_generator_steps_total") or 0, time.monotonic()
    ts = [threading.Thread(target=f, args=a, kwargs=k) for f, a, k in calls]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.monotonic() - t0, (metric(s, "ragd_generator_steps_total") or 0) - st0


def chat(s, q, **kw):
    body = {"messages": [{"role": "user", "content": q}], "temperature": 0}
    body.update(kw)
    r = requests.post(s.url + "/v1/chat/completions", json=body, timeout=900)
    r.raise_for_status()
    return r.json()


def non_streaming(model, tmp):
    s = RagdServer(tmp / "ns", extra_args=("--gen-model", model))
    try:
        chat(s, QUESTIONS[0], max_tokens=4)  # warm
        st0, t0 = metric(s, "ragd_generator_steps_total"), time.monotonic()
        for q in QUESTIONS:
            chat(s, q, max_tokens=32)
        seq_s, seq_steps = time.monotonic() - t0, metric(s, "ragd_generator_steps_total") - st0
        con_s, con_steps = timed_concurrently(s, [(chat, (s, q), {"max_tokens": 32}) for q in QUESTIONS])
    finally:
        s.stop()
    print(f"16 non-streaming requests, max_tokens 32 (--threads 8):")
    print(f"  one at a time: {seq_steps:5.0f} steps {seq_s:6.1f} s")
    print(f"  concurrent:    {con_steps:5.0f} steps {con_s:6.1f} s   ({seq_s / con_s:.2f}x faster)")


def long_prompt():
    return "Here are my notes:\n" + "\n".join(f"{i + 1}. {q}" for i, q in enumerate(QUESTIONS * 4)) + \
        "\nWhich of these questions is the hardest?"


def stall(model, tmp, budget):
    s = RagdServer(tmp / f"pf{budget}", extra_args=("--gen-model", model, "--gen-prefill-tokens", str(budget)))
    try:
        chat(s, QUESTIONS[0], max_tokens=4)
        body = {"messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
                "temperature": 0, "max_tokens": 2000, "stream": True}
        arrivals, res = [], {}
        with requests.post(s.url + "/v1/chat/completions", json=body, stream=True, timeout=300) as a:
            lines = a.iter_lines()
            while len(arrivals) < 10:
                if next(lines).startswith(b"data: "):
                    arrivals.append(time.monotonic())

            def run():
                t = time.monotonic()
                r = chat(s, long_prompt(), max_tokens=1)
                res.update(span=(t, time.monotonic()), n=r["usage"]["prompt_tokens"])

            tb = threading.Thread(target=run)
            tb.start()
            while tb.is_alive():
                if next(lines).startswith(b"data: "):
                    arrivals.append(time.monotonic())
            tb.join()
        start, end = res["span"]
        normal = sorted(b - a for a, b in zip(arrivals[:10], arrivals[1:10]))[4]
        during = sorted(b - a for a, b in zip(arrivals, arrivals[1:]) if b >= start and a <= end)
        return res["n"], normal, during[len(during) // 2], during[-1], end - start
    finally:
        s.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(REPO / "models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"))
    args = ap.parse_args()
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="ragd-bench-serving-"))
    print(f"model {os.path.basename(args.model)}, {os.cpu_count()} CPUs")
    non_streaming(args.model, tmp)
    print("a stream decoding while a long prompt arrives (its prompt tokens / step budget):")
    rows = [(b, *stall(args.model, tmp, b)) for b in (2048, 256, 64)]
    whole = rows[0][4]
    for b, n, normal, median, worst, ttft in rows:
        print(f"  --gen-prefill-tokens {b:4d}: {n} prompt tokens; stream gap before {normal * 1000:4.0f} ms, "
              f"while prefilling median {median * 1000:5.0f} ms, longest {worst * 1000:5.0f} ms "
              f"({whole / worst:.1f}x shorter than whole); long prompt answered in {ttft:.1f} s")


if __name__ == "__main__":
    main()
