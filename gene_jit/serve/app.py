"""The HTTP side of `gene-jit serve`: a Starlette application with the OpenAI routes.

Requests become scheduler jobs (gene_jit.serve.scheduler); their output comes back from
the scheduler thread through `loop.call_soon_threadsafe` into an asyncio queue per
request, and leaves as one JSON response or as server-sent events ending in `[DONE]`.
A client that goes away cancels its jobs, which frees their slots at the next step.
Every refusal is an OpenAI-style error object with a 4xx status."""

from __future__ import annotations

import asyncio
import base64
import copy
import hmac
import sys
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from gene_jit.llama.embed import embed
from gene_jit.llama.errors import LlamaError
from gene_jit.serve import bodies
from gene_jit.serve.bodies import ApiError, Plan
from gene_jit.serve.metrics import Metrics
from gene_jit.serve.scheduler import Job, QueueFull, Scheduler

if TYPE_CHECKING:
    from gene_jit.llama.model import Model

DISCONNECT_POLL = 0.5  # seconds between checks that a non-streaming client is still there
Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Service:
    """What the routes share: the model, its scheduler and metrics, and the API key."""

    model: Model
    scheduler: Scheduler
    metrics: Metrics
    model_id: str
    api_key: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    def check_key(self, request: Request) -> None:
        if self.api_key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, key = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(), self.api_key.encode()):
            raise ApiError(401, "a valid API key is needed: send the header 'Authorization: Bearer KEY'",
                           code="invalid_api_key")


def create_app(service: Service) -> Starlette:
    def route(path: str, fn: Callable[[Service, Request], Awaitable[Response]], method: str,
              auth: bool = True) -> Route:
        async def handler(request: Request) -> Response:
            response = await _answer(service, request, fn, auth)
            service.metrics.request(path, response.status_code)
            return response

        return Route(path, handler, methods=[method])

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        what = "no such route" if status == 404 else f"{request.method} is not allowed here"
        return _error(ApiError(status, f"{what}: {request.method} {request.url.path}"))

    return Starlette(
        routes=[
            route("/health", _health, "GET", auth=False),
            route("/metrics", _metrics, "GET"),
            route("/v1/models", _models, "GET"),
            route("/v1/completions", _completions, "POST"),
            route("/v1/chat/completions", _chat, "POST"),
            route("/v1/embeddings", _embeddings, "POST"),
        ],
        exception_handlers={404: not_found, 405: not_found},
    )


async def _answer(service: Service, request: Request, fn: Callable[[Service, Request], Awaitable[Response]],
                  auth: bool) -> Response:
    try:
        if auth:
            service.check_key(request)
        return await fn(service, request)
    except ApiError as exc:
        return _error(exc)
    except LlamaError as exc:  # the library refused what the request asked for
        return _error(ApiError(400, exc.message))
    except Exception as exc:  # noqa: BLE001 - a fault of ours still gets a JSON answer
        traceback.print_exception(exc, file=sys.stderr)
        return _error(ApiError(500, f"internal error (a bug in gene-jit): {type(exc).__name__}: {exc}",
                               kind="server_error"))


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _body(request: Request, endpoint: str) -> dict[str, Any]:
    return bodies.parse_json(await request.body(), endpoint)


# -- small routes ------------------------------------------------------------------------


async def _health(service: Service, request: Request) -> Response:
    g = service.scheduler.gauges()
    return JSONResponse({"status": "ok", "slots_idle": g["slots"] - g["active"],
                         "slots_processing": g["active"], "queue": g["queue"]})


async def _metrics(service: Service, request: Request) -> Response:
    return PlainTextResponse(service.metrics.text(), media_type="text/plain; version=0.0.4")


async def _models(service: Service, request: Request) -> Response:
    info = {"id": service.model_id, "object": "model", "created": service.created, "owned_by": "gene-jit",
            "meta": {"path": str(service.model.path), "n_ctx": service.scheduler.n_ctx,
                     "parallel": service.scheduler.parallel, "n_vocab": service.model.n_vocab,
                     "exact_batching": service.scheduler.exact}}
    return JSONResponse({"object": "list", "data": [info]})


async def _embeddings(service: Service, request: Request) -> Response:
    body = await _body(request, "embeddings")
    bodies.check_model(body, service.model_id, service.model)
    texts = bodies.embedding_inputs(body)
    fmt = bodies.encoding_format(body)
    model = service.model
    bodies.check_dimensions(body, model.n_embd)
    if hasattr(model, "engine"):
        try:
            _ = model.embed_ctx  # the engine says here whether it computes embeddings
        except LlamaError:
            raise ApiError(400, "this server runs gene-jit's own engine (--engine gene), which does not "
                           "compute embeddings yet; start gene-jit serve without --engine gene to serve "
                           "/v1/embeddings") from None

    def work() -> tuple[list[np.ndarray], int]:
        vectors = [embed(model, t) for t in texts]
        return vectors, sum(len(model.tokenize(t, add_special=False)) for t in texts)

    vectors, used = await asyncio.to_thread(work)
    data = [{"object": "embedding", "index": i, "embedding": _vector(v, fmt)} for i, v in enumerate(vectors)]
    return JSONResponse({"object": "list", "data": data, "model": service.model_id,
                         "usage": {"prompt_tokens": used, "total_tokens": used}})


def _vector(vec: np.ndarray, fmt: str) -> Any:
    if fmt == "base64":
        return base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vec]


# -- generation --------------------------------------------------------------------------


async def _completions(service: Service, request: Request) -> Response:
    body = await _body(request, "completions")
    bodies.check_model(body, service.model_id, service.model)
    prompts = bodies.completion_prompts(service.model, body)
    plan = bodies.plan(service.model, body, prompts, service.scheduler.n_ctx, service.scheduler.parallel, False)
    plan.echo = bodies.completion_echo(service.model, body)
    return await _generate(service, request, plan, "cmpl-", "text_completion")


async def _chat(service: Service, request: Request) -> Response:
    body = await _body(request, "chat")
    bodies.check_model(body, service.model_id, service.model)
    prompt = bodies.chat_prompt_tokens(service.model, body)
    plan = bodies.plan(service.model, body, [prompt], service.scheduler.n_ctx, service.scheduler.parallel, True)
    return await _generate(service, request, plan, "chatcmpl-", "chat.completion")


class Run:
    """The jobs of one request and the queue their output arrives in."""

    def __init__(self, service: Service, plan: Plan) -> None:
        self.service, self.plan = service, plan
        self.queue: asyncio.Queue[tuple[int, str, Any]] = asyncio.Queue()
        post = _poster(asyncio.get_running_loop())
        self.jobs: list[Job] = []
        for tokens in plan.prompts:
            for k in range(plan.n):
                sampling = copy.copy(plan.sampling)
                if k and sampling.seed is not None and sampling.temperature > 0:
                    sampling.seed = (sampling.seed + k) & 0xFFFFFFFF  # choices that differ
                self.jobs.append(Job(tokens, plan.max_tokens, sampling, self._sink(len(self.jobs)),
                                     plan.stops, end_at_control=plan.chat, post=post))
        self.open = set(range(len(self.jobs)))

    def _sink(self, index: int) -> Callable[[str, Any], None]:
        """Called in the event loop (the scheduler posts its events there)."""
        put = self.queue.put_nowait
        return lambda kind, value: put((index, kind, value))

    def start(self) -> None:
        try:
            self.service.scheduler.submit(self.jobs)
        except QueueFull as exc:
            raise ApiError(429, f"the server is busy (every slot is taken and the queue is full); "
                           f"retry in {exc.retry_after} s", kind="rate_limit_error", code="rate_limit_exceeded",
                           headers={"Retry-After": str(exc.retry_after)}) from None

    async def events(self, request: Request | None) -> AsyncIterator[tuple[int, str, Any]]:
        """Output events until every job has ended; with `request`, stop (cancelling the
        jobs) when its client disconnects."""
        polled = time.monotonic()
        while self.open:
            try:
                index, kind, value = await asyncio.wait_for(self.queue.get(), DISCONNECT_POLL)
            except TimeoutError:
                index = -1
            # polled by the clock, not only when no output came for a while: a request
            # that is generating has output every step, and would never be polled
            if request is not None and time.monotonic() - polled >= DISCONNECT_POLL:
                polled = time.monotonic()
                if await request.is_disconnected():
                    self.cancel()
                    return
            if index < 0:
                continue
            if kind != "text":
                self.open.discard(index)
            yield index, kind, value

    def cancel(self) -> None:
        for i in self.open:
            self.service.scheduler.cancel(self.jobs[i])
        self.open.clear()

    def echo(self, index: int) -> str:
        """What goes in front of the text of job `index` (its prompt, with `echo`)."""
        echo = self.plan.echo
        return "" if echo is None else echo[index // self.plan.n]

    def usage(self) -> dict[str, int]:
        prompt = sum(len(p) for p in self.plan.prompts)
        done = sum(j.generated for j in self.jobs)
        return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


async def _generate(service: Service, request: Request, plan: Plan, prefix: str, kind: str) -> Response:
    run = Run(service, plan)
    run.start()
    head = {"id": prefix + uuid.uuid4().hex[:24], "created": int(time.time()), "model": service.model_id}
    if plan.stream:
        return StreamingResponse(_stream(run, head, kind), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    texts: list[list[str]] = [[] for _ in run.jobs]
    reasons: list[str] = [""] * len(run.jobs)
    try:
        async for index, what, value in run.events(request):
            if what == "text":
                texts[index].append(value)
            elif what == "done":
                reasons[index] = value
            else:
                raise _job_error(value)
    finally:
        run.cancel()
    if not all(reasons):  # the client went away; nobody reads this
        return Response(status_code=499)
    choices = []
    for i, (parts, reason) in enumerate(zip(texts, reasons, strict=True)):
        if reason == "stop":
            _check_schema(plan, "".join(parts))
        text = run.echo(i) + "".join(parts)
        if plan.chat:
            choices.append({"index": i, "message": {"role": "assistant", "content": text},
                            "finish_reason": reason, "logprobs": None})
        else:
            choices.append({"index": i, "text": text, "finish_reason": reason, "logprobs": None})
    return JSONResponse({**head, "object": kind, "choices": choices, "usage": run.usage()})


_POSTERS: dict[int, tuple[asyncio.AbstractEventLoop, Callable[[list[Any]], None]]] = {}


def _poster(loop: asyncio.AbstractEventLoop) -> Callable[[list[Any]], None]:
    """For the scheduler thread: run a step's [(sink, kind, value)] in `loop`, with one
    wake-up (the same function for every job of the loop, so one call per step)."""
    known = _POSTERS.get(id(loop))
    if known is not None and known[0] is loop:
        return known[1]
    for key in [k for k, (other, _) in _POSTERS.items() if other.is_closed()]:
        del _POSTERS[key]

    def deliver(events: list[Any]) -> None:
        for sink, kind, value in events:
            sink(kind, value)

    def post(events: list[Any]) -> None:
        try:
            loop.call_soon_threadsafe(deliver, events)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    _POSTERS[id(loop)] = (loop, post)
    return post


def _check_schema(plan: Plan, text: str) -> None:
    """A reply that breaks response_format's schema where the grammar cannot hold it is an
    error naming what it breaks, as generate-json's is (it was a 200 with the JSON)."""
    breach = plan.breach(text)
    if breach is not None:
        raise ApiError(500, f"the model's reply breaks the response_format schema: {breach}",
                       kind="server_error", code="schema_violation")


def _job_error(message: str) -> ApiError:
    if message.startswith("internal error"):
        return ApiError(500, message, kind="server_error")
    if "shutting down" in message:
        return ApiError(503, message, kind="server_error")
    return ApiError(400, message)


async def _stream(run: Run, head: dict[str, Any], kind: str) -> AsyncIterator[str]:
    """Server-sent events: one chunk per piece of text, a last chunk per choice with its
    finish reason, usage if asked for, then `[DONE]`. Leaving early (the client went
    away, and Starlette cancels this generator) cancels the jobs."""
    chat = run.plan.chat
    obj = kind + ".chunk" if chat else kind

    def chunk(index: int, text: str | None, reason: str | None, role: bool = False) -> str:
        if chat:
            delta: dict[str, Any] = {} if text is None else {"content": text}
            if role:
                delta["role"] = "assistant"
            choice: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": reason, "logprobs": None}
        else:
            choice = {"index": index, "text": text or "", "finish_reason": reason, "logprobs": None}
        return _sse({**head, "object": obj, "choices": [choice]})

    try:
        if chat:
            for i in range(len(run.jobs)):
                yield chunk(i, "", None, role=True)
        elif run.plan.echo is not None:
            for i in range(len(run.jobs)):
                yield chunk(i, run.echo(i), None)
        sent: list[list[str]] = [[] for _ in run.jobs]
        async for index, what, value in run.events(None):
            if what == "text":
                sent[index].append(value)
                yield chunk(index, value, None)
            elif what == "done":
                try:
                    if value == "stop":
                        _check_schema(run.plan, "".join(sent[index]))
                except ApiError as breach:
                    yield _sse(breach.body())
                    break
                yield chunk(index, None, value)
            else:
                yield _sse(_job_error(value).body())
                break
        if run.plan.include_usage:
            yield _sse({**head, "object": obj, "choices": [], "usage": run.usage()})
        yield "data: [DONE]\n\n"
    finally:
        run.cancel()


def _sse(data: dict[str, Any]) -> str:
    import json

    return "data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n\n"
