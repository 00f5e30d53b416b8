"""`gene-jit serve`: the OpenAI API through the official `openai` client and raw HTTP,
continuous batching with many clients, disconnects, refusals and the command line."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gene_jit.serve.metrics import Metrics

openai = pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parent.parent
# as the tests found them, before any server started here
_ENV_BEFORE = {k: os.environ.get(k) for k in ("GGML_CPU_TILED_MM", "OMP_WAIT_POLICY")}
N_CTX = 512


def _start(**kw: Any) -> Any:
    from gene_jit.serve.server import Server, Settings

    kw.setdefault("port", 0)
    return Server(Settings(**kw)).start()


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    srv = _start(parallel=4, n_ctx=N_CTX)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server: Any) -> Any:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def _http(url: str, body: Any = None, raw: bytes | None = None, headers: dict[str, str] | None = None,
          method: str | None = None) -> tuple[int, Any, bytes]:
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json",
                                                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def _health(server: Any) -> dict[str, Any]:
    return json.loads(_http(server.url + "/health")[2])


def _wait_idle(server: Any, seconds: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    state = _health(server)
    while state["slots_processing"] and time.monotonic() < deadline:
        time.sleep(0.1)
        state = _health(server)
    return state


def _alone(model: Any, prompt: str, n: int) -> str:
    """What a greedy request gets alone: generate-text's decoding (the prompt in chunks,
    then one token per call) on a context with the server's kernels (no flash attention)."""
    from gene_jit.llama.context import Context
    from gene_jit.llama.generate import Generation
    from gene_jit.llama.sampler import Sampling

    ctx = Context(model, N_CTX, canonical=True, flash_attn=False)
    try:
        sampling = Sampling.from_kwargs(model, {"temperature": 0.0})
        return Generation(model, ctx, model.prompt_tokens(prompt), n, sampling, speculate=False).run()
    finally:
        ctx.close()


def _counting(k: int) -> tuple[str, str]:
    """A prompt whose greedy continuation starts with a number no other prompt has."""
    return "Counting: " + ", ".join(str(k + i) for i in range(5)) + ",", f" {k + 5},"


# -- no model needed -------------------------------------------------------------------


def test_metrics_text_is_prometheus() -> None:
    m = Metrics()
    m.request("/v1/completions", 200)
    m.prompt(10, 4)
    m.tokens_out(3)
    m.first_token(0.3)
    m.first_token(100.0)
    text = m.text()
    assert 'gene_jit_requests_total{endpoint="/v1/completions",status="200"} 1' in text
    assert "gene_jit_prompt_tokens_total 10" in text and "gene_jit_prompt_tokens_cached_total 4" in text
    assert "gene_jit_generated_tokens_total 3" in text
    assert 'gene_jit_time_to_first_token_seconds_bucket{le="0.25"} 0' in text
    assert 'gene_jit_time_to_first_token_seconds_bucket{le="0.5"} 1' in text
    assert 'gene_jit_time_to_first_token_seconds_bucket{le="+Inf"} 2' in text
    assert "gene_jit_time_to_first_token_seconds_count 2" in text
    for line in text.splitlines():
        assert line.startswith("#") or re.fullmatch(r"gene_jit_\w+(\{[^}]*\})? [-+0-9.e]+", line), line


def test_gene_serve_refuses_unknown_option() -> None:
    from gene_jit.api import eval_source
    from gene_jit.runtime.errors import GeneError

    with pytest.raises(GeneError, match="serve does not take :prot"):
        eval_source('(serve "default" :prot 80)', "<test>")
    with pytest.raises(GeneError, match="parallel must be an integer"):
        eval_source('(serve "default" :parallel 0)', "<test>")
    with pytest.raises(GeneError, match="serve needs a model .* got nil"):
        eval_source('(serve nil :port 0)', "<test>")


# -- the API through the openai client --------------------------------------------------


@pytest.mark.model
def test_models_and_health(server: Any, client: Any) -> None:
    ids = [m.id for m in client.models.list().data]
    assert ids == [server.model_id]
    state = _health(server)
    assert state["status"] == "ok" and state["slots_idle"] + state["slots_processing"] == 4


@pytest.mark.model
def test_completion_alone_is_one_sequence_decoding(server: Any, client: Any) -> None:
    prompt = "The capital of France is"
    r = client.completions.create(model="default", prompt=prompt, max_tokens=12, temperature=0)
    assert r.choices[0].text == _alone(server.model, prompt, 12)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 12
    assert r.usage.prompt_tokens == len(server.model.prompt_tokens(prompt))


@pytest.mark.model
def test_chat_uses_the_template_and_stops(client: Any) -> None:
    r = client.chat.completions.create(model="default", temperature=0, max_tokens=16,
                                       messages=[{"role": "user", "content": "Reply with one word: hello"}])
    choice = r.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert "<end_of_turn>" not in choice.message.content and "<start_of_turn>" not in choice.message.content
    assert choice.finish_reason in ("stop", "length")


@pytest.mark.model
@pytest.mark.parametrize("chat", [False, True])
def test_stream_joins_to_the_whole_text(client: Any, chat: bool) -> None:
    args: dict[str, Any] = {"model": "default", "temperature": 0, "max_tokens": 12}
    if chat:
        args["messages"] = [{"role": "user", "content": "Name a fruit."}]
        whole = client.chat.completions.create(**args).choices[0].message.content
        chunks = list(client.chat.completions.create(**args, stream=True))
        parts = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    else:
        args["prompt"] = "Once upon a time"
        whole = client.completions.create(**args).choices[0].text
        chunks = list(client.completions.create(**args, stream=True))
        parts = [c.choices[0].text for c in chunks if c.choices]
    assert len([p for p in parts if p]) > 1  # really streamed, piece by piece
    assert "".join(parts) == whole
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


@pytest.mark.model
def test_stream_is_sse_ending_in_done(server: Any) -> None:
    body = {"model": "default", "prompt": "Hello", "max_tokens": 4, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    status, headers, data = _http(server.url + "/v1/completions", body)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [e for e in data.decode().split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    usage = json.loads(events[-2][6:])["usage"]
    assert usage["completion_tokens"] == 4


@pytest.mark.model
def test_response_format_json_schema(client: Any) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                               "age": {"type": "integer", "minimum": 0, "maximum": 120}},
              "required": ["name", "age"], "additionalProperties": False}
    r = client.chat.completions.create(
        model="default", temperature=0, max_tokens=48,
        messages=[{"role": "user", "content": "Invent a person. Answer in JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}})
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content), schema)


@pytest.mark.model
def test_embeddings(server: Any, client: Any) -> None:
    r = client.embeddings.create(model="default", input=["a cat sat", "stock prices fell", "a cat sat"])
    vecs = [np.array(d.embedding) for d in r.data]
    assert [d.index for d in r.data] == [0, 1, 2] and len(vecs[0]) == server.model.n_embd
    assert np.allclose(vecs[0], vecs[2]) and not np.allclose(vecs[0], vecs[1])
    assert abs(np.linalg.norm(vecs[1]) - 1.0) < 1e-4
    status, _, raw = _http(server.url + "/v1/embeddings", {"model": "default", "input": "a cat sat",
                                                           "encoding_format": "float"})
    assert status == 200 and np.allclose(json.loads(raw)["data"][0]["embedding"], vecs[0], atol=1e-6)
    _, _, raw = _http(server.url + "/v1/embeddings", {"model": "default", "input": "a cat sat",
                                                      "encoding_format": "base64"})
    packed = np.frombuffer(base64.b64decode(json.loads(raw)["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(packed, vecs[0], atol=1e-6)


@pytest.mark.model
def test_n_choices(client: Any) -> None:
    r = client.completions.create(model="default", prompt="The sky is", max_tokens=6, temperature=0, n=3)
    texts = [c.text for c in r.choices]
    assert [c.index for c in r.choices] == [0, 1, 2] and texts[0] == texts[1] == texts[2]


# -- many clients, disconnects ----------------------------------------------------------


@pytest.mark.model
def test_sixteen_concurrent_clients(server: Any, client: Any) -> None:
    """16 clients at once on 4 slots: each gets the continuation of its own prompt."""
    answers: dict[int, str] = {}
    errors: list[BaseException] = []

    def ask(k: int) -> None:
        try:
            prompt, _ = _counting(k)
            stream = k % 2 == 0
            r = client.completions.create(model="default", prompt=prompt, max_tokens=8, temperature=0, stream=stream)
            answers[k] = "".join(c.choices[0].text for c in r if c.choices) if stream else r.choices[0].text
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    ks = [3 + 7 * i for i in range(16)]
    threads = [threading.Thread(target=ask, args=(k,)) for k in ks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k in ks:
        assert answers[k].startswith(_counting(k)[1]), (k, answers[k])
    assert _wait_idle(server)["queue"] == 0


@pytest.mark.model
def test_concurrent_greedy_replies_are_as_alone(server: Any, client: Any) -> None:
    """Batched with others, a greedy request gets what it gets alone."""
    texts = ["The best thing about rain is", "My grandfather used to say", "def add(a, b):",
             "Three facts about owls:", "The train left the station", "Dear diary, today"]
    answers: dict[int, str] = {}

    def ask(i: int) -> None:
        answers[i] = client.completions.create(model="default", prompt=texts[i], max_tokens=10,
                                               temperature=0).choices[0].text

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, text in enumerate(texts):
        assert answers[i] == _alone(server.model, text, 10), text


@pytest.mark.model
def test_requests_move_down_so_each_step_is_one_micro_batch(server: Any) -> None:
    """Requests that end early leave free slots below busy ones; the busy ones move down
    (their KV streams copied), so every step's rows are consecutive sequences (libllama
    makes one micro-batch of those only), and each reply is still what it gets alone."""
    from gene_jit.llama.sampler import Sampling
    from gene_jit.serve.scheduler import Job

    _wait_idle(server)
    sched, model = server.scheduler, server.model
    texts = ["The best thing about rain is", "My grandfather used to say", "Three facts about owls:",
             "Dear diary, today", "The train left the station"]
    lengths = [2, 14, 3, 14, 1]
    replies: dict[int, list[str]] = {i: [] for i in range(len(texts))}
    ended = threading.Semaphore(0)

    def sink(i: int) -> Any:
        def put(kind: str, value: Any) -> None:
            if kind == "text":
                replies[i].append(value)
            else:
                ended.release()
        return put

    greedy = Sampling.from_kwargs(model, {"temperature": 0.0})
    jobs = [Job(model.prompt_tokens(t), n, greedy, sink(i)) for i, (t, n) in enumerate(zip(texts, lengths, strict=True))]
    steps: list[list[int]] = []
    feed_rows = sched.ctx.feed_rows

    def recording(rows: list[tuple[int, int]]) -> list[int]:
        steps.append([seq for seq, _ in rows])
        return feed_rows(rows)

    sched.ctx.feed_rows = recording
    try:
        sched.submit(jobs[:4])
        time.sleep(0.5)
        sched.submit(jobs[4:])  # the free slot it takes is the lowest, never above a busy one
        for _ in jobs:
            assert ended.acquire(timeout=300)
    finally:
        del sched.ctx.feed_rows
    assert [len(seqs) for seqs in steps].count(2) >= 8, steps  # the two long ones went on together
    assert all(seqs == list(range(seqs[0], seqs[0] + len(seqs))) for seqs in steps), steps
    for i, text in enumerate(texts):
        assert "".join(replies[i]) == _alone(model, text, lengths[i]), text


@pytest.mark.model
def test_shared_prompt_start_is_decoded_once(server: Any, client: Any) -> None:
    system = " ".join(f"Rule {i}: answer briefly and politely." for i in range(1, 25))
    before = _metric(server, "gene_jit_prompt_tokens_cached_total")
    replies = [client.completions.create(model="default", prompt=f"{system}\nQ: {q}\nA:", max_tokens=6,
                                         temperature=0).choices[0].text for q in ("Why is the sky blue?", "What is 2+2?")]
    assert _metric(server, "gene_jit_prompt_tokens_cached_total") - before >= 128
    assert replies[1] == _alone(server.model, f"{system}\nQ: What is 2+2?\nA:", 6)


def _metric(server: Any, name: str) -> int:
    text = _http(server.url + "/metrics")[2].decode()
    return int(re.search(rf"^{name} (\d+)$", text, re.M).group(1))  # type: ignore[union-attr]


@pytest.mark.model
def test_disconnect_mid_stream_frees_the_slot(server: Any) -> None:
    before = _health(server)["slots_processing"]
    body = json.dumps({"model": "default", "prompt": "Write a long story.", "max_tokens": 400,
                       "temperature": 0, "stream": True}).encode()
    req = urllib.request.Request(server.url + "/v1/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    resp = urllib.request.urlopen(req, timeout=300)
    assert resp.readline().startswith(b"data: ")
    assert _health(server)["slots_processing"] == before + 1
    resp.close()  # the client goes away mid-stream
    state = _wait_idle(server, seconds=30)
    assert state["slots_processing"] == 0
    gen = _metric(server, "gene_jit_generated_tokens_total")
    time.sleep(1.0)
    assert _metric(server, "gene_jit_generated_tokens_total") == gen  # nothing decodes for it any more


# -- refusals ---------------------------------------------------------------------------

LONG = "word " * (N_CTX + 50)
BAD = [
    ("/v1/completions", b"{not json", 400, None),
    ("/v1/completions", b"[1, 2]", 400, None),
    ("/v1/completions", {"prompt": "hi"}, 400, "model"),
    ("/v1/completions", {"model": "default"}, 400, "prompt"),
    ("/v1/completions", {"model": "gpt-4o", "prompt": "hi"}, 404, "model"),
    ("/v1/completions", {"model": "default", "prompt": LONG}, 400, "prompt"),
    ("/v1/completions", {"model": "default", "prompt": "hi", "max_tokens": 0}, 400, "max_tokens"),
    ("/v1/completions", {"model": "default", "prompt": "hi", "max_tokens": N_CTX * 4}, 400, "max_tokens"),
    ("/v1/completions", {"model": "default", "prompt": "hi", "max_tokens": "8"}, 400, "max_tokens"),
    ("/v1/completions", {"model": "default", "prompt": "hi", "temperature": -1}, 400, "temperature"),
    ("/v1/completions", {"model": "default", "prompt": "hi", "top_p": 2}, 400, "top_p"),
    ("/v1/completions", {"model": "default", "prompt": "hi", "n": 99}, 400, "n"),
    ("/v1/completions", {"model": "default", "prompt": "hi", "seed": -5}, 400, "seed"),
    ("/v1/completions", {"model": "default", "prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ("/v1/completions", {"model": "default", "prompt": [99999999]}, 400, "prompt"),
    ("/v1/chat/completions", {"model": "default"}, 400, "messages"),
    ("/v1/chat/completions", {"model": "default", "messages": []}, 400, "messages"),
    ("/v1/chat/completions", {"model": "default", "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages"),
    ("/v1/chat/completions", {"model": "default", "messages": [{"role": "user", "content": LONG}]}, 400, "messages"),
    ("/v1/chat/completions", {"model": "default", "messages": [{"role": "user", "content": "x"}],
                              "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object",
                                                  "patternProperties": {}}}}}, 400, "response_format"),
    ("/v1/embeddings", {"model": "default"}, 400, "input"),
    ("/v1/embeddings", {"model": "default", "input": [1.5]}, 400, "input"),
    # a user or system message needs its content, an embedding some text (as OpenAI)
    ("/v1/chat/completions", {"model": "default", "messages": [{"role": "user"}]}, 400, "messages"),
    ("/v1/chat/completions", {"model": "default", "messages": [{"role": "system", "content": None},
                                                               {"role": "user", "content": "x"}]}, 400, "messages"),
    ("/v1/embeddings", {"model": "default", "input": ""}, 400, "input"),
    ("/v1/embeddings", {"model": "default", "input": ["a", ""]}, 400, "input"),
    ("/v1/embeddings", {"model": "default", "input": "a", "dimensions": 3}, 400, "dimensions"),
    # a field OpenAI does not define for the endpoint is refused, never ignored
    ("/v1/completions", {"model": "default", "prompt": "x", "bogus_field": 1}, 400, "bogus_field"),
    ("/v1/chat/completions", {"model": "default", "messages": [{"role": "user", "content": "x"}], "echo": True},
     400, "echo"),
    ("/v1/embeddings", {"model": "default", "input": "a", "max_tokens": 3}, 400, "max_tokens"),
    ("/v1/completions", {"model": "default", "prompt": "x", "echo": "yes"}, 400, "echo"),
    ("/v1/completions", {"model": "default", "prompt": "x", "best_of": 3}, 400, "best_of"),
    ("/v1/chat/completions", {"model": "default", "messages": [{"role": "user", "content": "x"}],
                              "top_logprobs": 2}, 400, "top_logprobs"),
    ("/v1/nothing", {}, 404, None),
]


@pytest.mark.model
@pytest.mark.parametrize("path,body,status,param", BAD, ids=[f"{p}-{i}" for i, (p, *_) in enumerate(BAD)])
def test_bad_requests_get_their_4xx(server: Any, path: str, body: Any, status: int, param: str | None) -> None:
    raw = body if isinstance(body, bytes) else None
    code, headers, data = _http(server.url + path, None if raw else body, raw=raw)
    assert code == status, data
    error = json.loads(data)["error"]
    assert error["message"] and error["type"]
    assert error["param"] == param


SURROGATE = [  # (path, body with the marker @ where a lone surrogate goes, param, where)
    ("/v1/completions", {"prompt": "@"}, "prompt", "'prompt'"),
    ("/v1/completions", {"prompt": ["fine", "a@b"]}, "prompt", "'prompt[1]'"),
    ("/v1/completions", {"prompt": "x", "stop": ["@"]}, "stop", "'stop[0]'"),
    ("/v1/completions", {"prompt": "@", "stream": True}, "prompt", "'prompt'"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "@"}]}, "messages", "'messages[0].content'"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "text", "text": "@"}]}],
                              "stream": True}, "messages", "'messages[0].content[0].text'"),
    ("/v1/embeddings", {"input": ["ok", "@"]}, "input", "'input[1]'"),
]


@pytest.mark.model
@pytest.mark.parametrize("path,body,param,where", SURROGATE, ids=[f"{p}-{i}" for i, (p, *_) in enumerate(SURROGATE)])
def test_lone_surrogate_is_a_400_naming_the_field(server: Any, path: str, body: Any, param: str, where: str) -> None:
    """JSON lets "\\ud800" through, but it is no character and no tokenizer takes it."""
    limit = {} if "embeddings" in path else {"max_tokens": 2}
    raw = json.dumps({"model": "default", **limit, **body}).replace("@", "\\ud800").encode()
    code, _, data = _http(server.url + path, raw=raw)
    assert code == 400, data
    error = json.loads(data)["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert where in error["message"] and "surrogate" in error["message"]


@pytest.mark.model
def test_openai_fields_that_change_nothing_are_taken(client: Any) -> None:
    r = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "Hi"}], max_tokens=2,
                                       user="u1", metadata={"k": "v"}, store=False, service_tier="auto",
                                       max_completion_tokens=2, seed=3, frequency_penalty=0, presence_penalty=0)
    assert r.usage.completion_tokens <= 2
    r2 = client.completions.create(model="default", prompt="Hi", max_tokens=2, user="u1", best_of=1, echo=False)
    assert r2.usage.completion_tokens <= 2


@pytest.mark.model
def test_echo_puts_the_prompt_in_front(server: Any, client: Any) -> None:
    prompt = "The capital of France is"
    plain = client.completions.create(model="default", prompt=prompt, max_tokens=3, temperature=0).choices[0].text
    echoed = client.completions.create(model="default", prompt=prompt, max_tokens=3, temperature=0, echo=True)
    assert echoed.choices[0].text == prompt + plain
    chunks = list(client.completions.create(model="default", prompt=prompt, max_tokens=3, temperature=0, echo=True,
                                            stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == prompt + plain
    ids = server.model.tokenize(" two words", add_special=False)
    r = client.completions.create(model="default", prompt=[ids, ids], max_tokens=1, temperature=0, echo=True, n=2)
    assert [c.text[: len(" two words")] for c in r.choices] == [" two words"] * 4


@pytest.mark.model
def test_chat_without_a_template_uses_the_architecture_s_own(server: Any, client: Any) -> None:
    """The default model's GGUF carries no chat template: Gemma's turn markers are used,
    not a User:/Assistant: transcript, by the server and by the library alike."""
    from gene_jit.llama.session import format_chat_prompt

    model = server.model
    assert model.chat_template() is None and model.meta("general.architecture") == "gemma3"
    text = format_chat_prompt(model, [{"role": "system", "content": "Be brief."}], "Name three colours.")
    assert text == ("<bos><start_of_turn>user\nBe brief.\n\nName three colours.<end_of_turn>\n"
                    "<start_of_turn>model\n")
    r = client.chat.completions.create(model="default", max_tokens=1, temperature=0, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name three colours."}])
    assert r.usage.prompt_tokens == len(model.tokenize(text, add_special=False, parse_special=True))


@pytest.mark.model
def test_json_output_ends_with_the_value(client: Any) -> None:
    """No whitespace after the JSON document (the grammars allow it after inner values
    only), at any sampling."""
    schemas = [{"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                                 "age": {"type": "integer"}}, "required": ["name", "age"]},
               {"type": "string", "pattern": "^[a-c]{1,6}$"}]
    texts = []
    for schema in schemas:
        r = client.chat.completions.create(
            model="default", max_tokens=40, temperature=1.5, seed=11, n=4,
            messages=[{"role": "user", "content": "Give a person as JSON."}],
            response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}})
        texts += [c.message.content for c in r.choices if c.finish_reason == "stop"]
    r = client.chat.completions.create(model="default", max_tokens=60, temperature=1.5, seed=5, n=4,
                                       messages=[{"role": "user", "content": "JSON please."}],
                                       response_format={"type": "json_object"})
    texts += [c.message.content for c in r.choices if c.finish_reason == "stop"]
    assert len(texts) >= 6
    for text in texts:
        assert text == text.strip(), texts
        json.loads(text)


@pytest.mark.model
def test_disconnected_non_streaming_client_frees_its_slot(server: Any) -> None:
    """A client that stops waiting for a whole (not streamed) reply: its request is
    cancelled at the next poll, not generated to the end."""
    import socket

    max_tokens = 400
    endless = {"type": "array", "items": {"type": "integer"}, "minItems": 400, "maxItems": 400}
    body = json.dumps({"model": "default", "prompt": "Numbers:", "max_tokens": max_tokens,
                       "response_format": {"type": "json_schema", "json_schema": {"schema": endless}}}).encode()
    host, port = server.url.removeprefix("http://").split(":")
    _wait_idle(server)
    before = _metric(server, "gene_jit_generated_tokens_total")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    deadline = time.monotonic() + 60
    while _metric(server, "gene_jit_generated_tokens_total") - before < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    sock.close()  # the client goes away while its reply is generated
    state = _wait_idle(server, seconds=120)
    assert state["slots_processing"] == 0
    assert _metric(server, "gene_jit_generated_tokens_total") - before < max_tokens


@pytest.mark.model
def test_wrong_method_is_a_json_405(server: Any) -> None:
    code, _, data = _http(server.url + "/v1/completions", method="GET")
    assert code == 405 and json.loads(data)["error"]["message"]


@pytest.mark.model
def test_full_queue_answers_429_with_retry_after(server: Any) -> None:
    srv = _start(model=server.model, parallel=1, n_ctx=256, queue=0)
    try:
        assert "(1 slot of 256 tokens)" in srv.banner()
        body = json.dumps({"model": "default", "prompt": "Tell me a story.", "max_tokens": 200, "stream": True,
                           "temperature": 0}).encode()
        req = urllib.request.Request(srv.url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
        busy = urllib.request.urlopen(req, timeout=300)
        assert busy.readline().startswith(b"data: ")
        code, headers, data = _http(srv.url + "/v1/completions", {"model": "default", "prompt": "hi", "max_tokens": 2})
        assert code == 429 and int(headers["Retry-After"]) >= 1
        assert json.loads(data)["error"]["code"] == "rate_limit_exceeded"
        busy.close()
        assert _wait_idle(srv)["slots_processing"] == 0
        code, _, _ = _http(srv.url + "/v1/completions", {"model": "default", "prompt": "hi", "max_tokens": 2})
        assert code == 200
    finally:
        srv.stop()


@pytest.mark.model
def test_api_key(server: Any) -> None:
    srv = _start(model=server.model, parallel=1, n_ctx=256, api_key="s3cret")
    try:
        url = srv.url + "/v1/models"
        assert _http(url)[0] == 401
        assert _http(url, headers={"Authorization": "Bearer nope"})[0] == 401
        code, _, data = _http(url, headers={"Authorization": "Bearer s3cret"})
        assert code == 200 and json.loads(data)["data"][0]["id"] == srv.model_id
        code, _, data = _http(srv.url + "/metrics")
        assert code == 401 and json.loads(data)["error"]["code"] == "invalid_api_key"
        assert _http(srv.url + "/health")[0] == 200
    finally:
        srv.stop()


# -- the command line -------------------------------------------------------------------


@pytest.mark.model
def test_gene_jit_serve_subprocess() -> None:
    """The command prints its URL, answers, and on Ctrl-C tells a stream still running
    that the server is shutting down, then exits 0."""
    exe = Path(sys.executable).parent / "gene-jit"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "gene_jit"]
    proc = subprocess.Popen([*cmd, "serve", "--port", "0", "--parallel", "2", "--n-ctx", "1024"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+)/v1", line)
        assert found, line
        base = found.group(1)
        code, _, data = _http(base + "/v1/completions", {"model": "default", "prompt": "Hi", "max_tokens": 3})
        assert code == 200 and json.loads(data)["usage"]["completion_tokens"] >= 1
        # a grammar that cannot end for hundreds of tokens keeps this stream running
        endless = {"type": "array", "items": {"type": "integer"}, "minItems": 400, "maxItems": 400}
        body = json.dumps({"model": "default", "prompt": "Numbers:", "max_tokens": 1000, "stream": True,
                           "response_format": {"type": "json_schema", "json_schema": {"schema": endless}}})
        req = urllib.request.Request(base + "/v1/completions", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
        resp = urllib.request.urlopen(req, timeout=120)
        assert resp.readline().startswith(b"data: ")
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        events = [e for e in resp.read().decode().split("\n\n") if e]
        assert events[-1] == "data: [DONE]"
        assert "shutting down" in json.loads(events[-2][6:])["error"]["message"]
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "stopped" in out and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _serve_process(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    exe = Path(sys.executable).parent / "gene-jit"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "gene_jit"]
    proc = subprocess.Popen([*cmd, "serve", "--port", "0", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"(http://127\.0\.0\.1:\d+)/v1", line)
    if not found:
        proc.kill()
        raise AssertionError(line + proc.communicate()[1])
    return proc, found.group(1)


@pytest.mark.model
def test_sixteen_concurrent_greedy_replies_equal_alone() -> None:
    """16 greedy requests decoded together get, token for token, what each gets alone at
    the same server: short prompts, and long ones whose sequences pass 256 and 512 cached
    cells (where a lone query's attention could take another path than a batch's)."""
    proc, base = _serve_process("--parallel", "16", "--n-ctx", "768")
    try:
        rule = " ".join(f"Rule {i}: every story has a hero who changes." for i in range(1, 40))
        topics = ["a lighthouse", "a robot painter", "summer's end", "a shy dragon", "Venice at night",
                  "a mountain town", "a clockmaker", "a ship in fog"]
        prompts = [f"Write about {t}. Once upon a time," for t in topics]
        prompts += [f"{rule}\nWrite about {t}. Once upon a time," for t in topics]

        def ask(prompt: str) -> str:
            code, _, data = _http(base + "/v1/completions", {"model": "default", "prompt": prompt,
                                                             "max_tokens": 24, "temperature": 0})
            assert code == 200, data
            return json.loads(data)["choices"][0]["text"]

        alone = [ask(p) for p in prompts]
        together: dict[int, str] = {}
        threads = [threading.Thread(target=lambda i=i: together.__setitem__(i, ask(prompts[i])))
                   for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        differ = [i for i in range(len(prompts)) if together.get(i) != alone[i]]
        assert not differ, [(prompts[i][-40:], alone[i], together.get(i)) for i in differ]
        code, _, data = _http(base + "/v1/models")
        assert json.loads(data)["data"][0]["meta"]["exact_batching"] is True
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.mark.model
def test_gene_engine_serves_the_same_replies() -> None:
    """`--engine gene`: requests decoded together by gene-jit's own engine get what
    generate-text gives each alone on that engine."""
    from gene_jit.llama.gene_api import generate_text

    srv = _start(engine="gene", parallel=3, n_ctx=256)
    try:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=600)
        prompts = ["The capital of France is", "Counting: 1, 2, 3, 4,", "def add(a, b):"]
        answers: dict[int, str] = {}

        def ask(i: int) -> None:
            answers[i] = client.completions.create(model="default", prompt=prompts[i], max_tokens=8,
                                                   temperature=0).choices[0].text

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert type(srv.model).__name__ == "EngineModel"
        code, _, data = _http(srv.url + "/v1/embeddings", {"model": "default", "input": "hi"})
        assert code == 400 and "start gene-jit serve without --engine gene" in json.loads(data)["error"]["message"]
        for i, prompt in enumerate(prompts):
            assert answers[i] == generate_text(srv.model, prompt, 8, temperature=0.0), prompt
    finally:
        srv.stop()


def test_serve_refuses_an_unknown_engine() -> None:
    from gene_jit.llama.errors import LlamaError
    from gene_jit.serve.server import Settings

    with pytest.raises(LlamaError, match="engine must be one of libllama, gene"):
        Settings(engine="cuda").check()


@pytest.mark.model
def test_a_server_whose_batched_rows_differ_says_so() -> None:
    """With ggml's tiled product left on, 16 rows together differ from one alone: the
    start-up check notices, warns, and /v1/models says so. SIGTERM stops it as Ctrl-C does."""
    proc, base = _serve_process("--parallel", "16", "--n-ctx", "256", env={"GGML_CPU_TILED_MM": "1"})
    try:
        code, _, data = _http(base + "/v1/models")
        assert code == 200 and json.loads(data)["data"][0]["meta"]["exact_batching"] is False
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert "may differ from the same request alone" in err
    assert "gene-jit serve: stopped" in out and proc.returncode == 0, (out, err)


def test_bodies_and_schemas_nested_too_deep_are_client_errors(server: Any) -> None:
    """A body nested deeper than the JSON reader follows, or a response_format schema
    deeper than the grammar takes, is a 400 saying so (they were 500s: RecursionError)."""
    raw = ('{"model":"default","prompt":"hi","max_tokens":2,"stop":' + "[" * 30000 + "]" * 30000 + "}").encode()
    status, _, body = _http(server.url + "/v1/completions", raw=raw)
    assert status == 400 and b"nests its arrays and objects too deeply" in body
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(600):
        schema = {"type": "array", "items": schema}
    status, _, body = _http(server.url + "/v1/chat/completions", {
        "model": "default", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
        "response_format": {"type": "json_schema", "json_schema": {"name": "d", "schema": schema}}})
    assert status == 400 and b"nests maps and arrays 601 deep; at most 128" in body
    assert json.loads(body)["error"]["param"] == "response_format"


def test_the_server_takes_back_the_environment_it_set(server: Any) -> None:
    """The kernel settings the server makes for exact batches are read by then: processes
    the program starts afterwards (a gene-jit run) get the environment they would have."""
    import os

    assert server.scheduler.exact
    assert {k: os.environ.get(k) for k in _ENV_BEFORE} == _ENV_BEFORE


def test_a_reply_that_breaks_what_the_grammar_cannot_hold_is_an_error(server: Any) -> None:
    """response_format keywords only a check settles (multipleOf over an unbounded range,
    a fraction between two bounds in one integer part) are checked as generate-json checks
    them: a reply that breaks one is an error naming it, not a 200 with the JSON (streamed:
    an error event in place of the finish)."""
    body = {"model": "default", "messages": [{"role": "user", "content": "A number:"}], "max_tokens": 20,
            "temperature": 0, "response_format": {"type": "json_schema", "json_schema": {
                "name": "n", "schema": {"type": "integer", "multipleOf": 7, "minimum": 1000000}}}}
    status, _, raw = _http(server.url + "/v1/chat/completions", body)
    value = json.loads(raw)
    if status == 200:  # the model wrote a multiple of 7 after all: it holds
        assert int(value["choices"][0]["message"]["content"]) % 7 == 0
        return
    assert status == 500 and value["error"]["code"] == "schema_violation"
    assert "multipleOf 7 does not hold" in value["error"]["message"]
    status, _, raw = _http(server.url + "/v1/chat/completions", {**body, "stream": True})
    events = [json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: {")]
    assert events[-1]["error"]["code"] == "schema_violation"
    assert not any(c.get("finish_reason") for e in events for c in e.get("choices", []))
