"""The framework chat clients users point at ragd's /v1/chat/completions:
LangChain's ChatOpenAI (langchain-openai) and LlamaIndex's OpenAILike
(llama-index-llms-openai-like). Their answers, invoked and streamed, must be
the model's own: at temperature 0 equal to what the openai client gets for
the same conversation."""

import os
from pathlib import Path

import pytest

from conftest import REPO, RagdServer

MODEL_FILE = Path(os.environ.get("RAGD_MODELS", str(REPO / "models"))) / "SmolLM2-135M-Instruct" / (
    "SmolLM2-135M-Instruct.Q4_1.gguf"
)
MODEL = "SmolLM2-135M-Instruct.Q4_1"
SYSTEM = "You are a concise assistant."
QUESTION = "Name three colours of the rainbow."


@pytest.fixture(scope="module")
def gen_server(tmp_path_factory):
    assert MODEL_FILE.is_file(), f"no model at {MODEL_FILE}: run `make models`"
    s = RagdServer(tmp_path_factory.mktemp("genclients") / "data", extra_args=("--gen-model", str(MODEL_FILE)))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def reference(gen_server):
    from openai import OpenAI

    client = OpenAI(base_url=gen_server.url + "/v1", api_key="unused", max_retries=0)
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
        temperature=0,
        max_tokens=24,
    )
    text = r.choices[0].message.content
    assert text.strip()
    return text


def test_langchain_chat_openai(gen_server, reference):
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        model=MODEL, base_url=gen_server.url + "/v1", api_key="unused", temperature=0, max_tokens=24, max_retries=0
    )
    msgs = [SystemMessage(content=SYSTEM), HumanMessage(content=QUESTION)]
    out = llm.invoke(msgs)
    assert out.content == reference
    assert out.response_metadata.get("finish_reason") in ("stop", "length")
    assert out.usage_metadata and out.usage_metadata["output_tokens"] > 0
    streamed = "".join(chunk.content for chunk in llm.stream(msgs))
    assert streamed == reference


def test_langchain_json_mode_and_tools(gen_server):
    """LangChain's structured output, in JSON mode and with a Pydantic model
    (a JSON schema), gets a dict and a model instance; binding tools, which
    ragd does not serve, fails loudly instead of answering text."""
    import openai
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        model=MODEL, base_url=gen_server.url + "/v1", api_key="unused", temperature=0, max_tokens=160, max_retries=0
    )
    out = llm.with_structured_output(method="json_mode").invoke(
        "Give me a JSON object describing a cat with its name and age."
    )
    assert isinstance(out, dict) and out, out

    from pydantic import BaseModel

    class Cat(BaseModel):
        """A cat."""

        name: str
        age: int
        indoor: bool

    # the default method of langchain-openai's structured output: a JSON schema
    cat = llm.with_structured_output(Cat).invoke("Describe a cat as JSON.")
    assert isinstance(cat, Cat), cat

    @tool
    def add(a: int, b: int) -> int:
        """Adds two numbers."""
        return a + b

    with pytest.raises(openai.BadRequestError, match="tool calling"):
        llm.bind_tools([add]).invoke("What is 2 + 3?")


def test_llamaindex_openai_like(gen_server, reference):
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(
        model=MODEL,
        api_base=gen_server.url + "/v1",
        api_key="unused",
        is_chat_model=True,
        temperature=0,
        max_tokens=24,
        context_window=8192,
        max_retries=0,
    )
    msgs = [ChatMessage(role="system", content=SYSTEM), ChatMessage(role="user", content=QUESTION)]
    out = llm.chat(msgs)
    assert out.message.content == reference
    last = None
    for last in llm.stream_chat(msgs):
        pass
    assert last is not None and last.message.content == reference
    # the completion API through LlamaIndex's non-chat path
    plain = OpenAILike(
        model=MODEL, api_base=gen_server.url + "/v1", api_key="unused", is_chat_model=False, temperature=0,
        max_tokens=8, max_retries=0,
    )
    text = plain.complete("The quick brown fox").text
    assert text.startswith(" with a quick brown bear.")
