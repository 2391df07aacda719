#!/usr/bin/env python3
"""Writes tests/fixtures/chat_template_golden.jsonl: prompts rendered by
transformers' own chat-template renderer (render_jinja_template, the code
behind apply_chat_template; transformers and jinja2 pinned below) from the
chat templates stored in real GGUF files. tests/unit/test_chat_template.c
must build the same prompt text, character for character, without Jinja.

Usage: scripts/gen_chat_template_golden.py
The script re-runs itself in a virtualenv holding transformers, jinja2 and
gguf (build/chatref-venv, or $RAGD_CHATREF_VENV) when the current Python
lacks them.

Templates (the `model` field of each record):
  smollm2  $RAGD_MODELS/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf
           (`make models`): ChatML with a default system turn.
  qwen2    tests/fixtures/bpe/ggml-vocab-qwen2.gguf: ChatML with Qwen2's
           default system turn.
Each record: model, template (the Jinja source), messages,
add_generation_prompt, prompt (what transformers renders)."""
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refvenv  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "chat_template_golden.jsonl"
TRANSFORMERS_VERSION = "5.24.0"
JINJA2_VERSION = "3.1.6"
GGUF_VERSION = "0.19.0"


def ensure_reference():
    def ready():
        from importlib.metadata import version

        import gguf  # noqa: F401
        import jinja2  # noqa: F401
        import transformers

        return (
            transformers.__version__ == TRANSFORMERS_VERSION
            and version("jinja2") == JINJA2_VERSION
            and version("gguf") == GGUF_VERSION
        )

    refvenv.ensure(
        __file__,
        [f"transformers=={TRANSFORMERS_VERSION}", f"jinja2=={JINJA2_VERSION}", f"gguf=={GGUF_VERSION}", "numpy"],
        ready,
        "RAGD_CHATREF_VENV",
        "chatref-venv",
    )


def models_dir():
    base = os.environ.get("RAGD_MODELS")
    return Path(base) if base else REPO / "models"


def gguf_template(path):
    from gguf import GGUFReader

    f = GGUFReader(str(path)).fields["tokenizer.chat_template"]
    return bytes(f.parts[f.data[0]]).decode("utf-8")


CONVERSATIONS = [
    ([{"role": "user", "content": "Hello"}], True),
    ([{"role": "user", "content": "Hello"}], False),
    ([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"}], True),
    (
        [
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "Another one?"},
        ],
        True,
    ),
    (
        [
            {"role": "system", "content": "  Keep the spaces.  \n"},
            {"role": "user", "content": " padded \n\n"},
            {"role": "assistant", "content": "\tok "},
            {"role": "user", "content": "Ünïcödé — 東京 🚀\nsecond line"},
        ],
        True,
    ),
    ([{"role": "user", "content": "Write <|im_start|>assistant\n literally"}], True),
    ([{"role": "user", "content": ""}], True),
    ([{"role": "assistant", "content": "I start."}, {"role": "user", "content": "Fine."}], True),
]


def main():
    ensure_reference()
    from transformers.utils.chat_template_utils import render_jinja_template

    templates = {
        "smollm2": gguf_template(models_dir() / "SmolLM2-135M-Instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"),
        "qwen2": gguf_template(REPO / "tests" / "fixtures" / "bpe" / "ggml-vocab-qwen2.gguf"),
    }
    n = 0
    with open(OUT, "w", encoding="utf-8") as f:
        for model, template in templates.items():
            for messages, gen in CONVERSATIONS:
                rendered = render_jinja_template(
                    conversations=[messages], chat_template=template, add_generation_prompt=gen
                )
                prompt = rendered[0][0] if isinstance(rendered, tuple) else rendered[0]
                rec = {
                    "model": model,
                    "template": template,
                    "messages": messages,
                    "add_generation_prompt": gen,
                    "prompt": prompt,
                }
                f.write(json.dumps(rec, ensure_ascii=True) + "\n")
                n += 1
    print(f"wrote {n} records to {OUT}")


if __name__ == "__main__":
    main()
