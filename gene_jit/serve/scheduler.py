"""Continuous batching: one thread owns one libllama context with one sequence per slot,
and each step decodes the next token of every generating request in one `llama_batch`.

A step (`Scheduler._step`):

1. drops requests whose client went away (`Job.cancel`), freeing their slots;
2. admits waiting requests into free slots, each into the slot whose cache holds the
   longest reusable start of its prompt (a shared system prompt is decoded once), then
   moves requests down into free slots below them, so that the busy slots are sequences
   0..n-1 (`Scheduler._compact`: libllama decodes only consecutive sequence ids in one
   micro-batch, and each micro-batch is a pass over all the weights);
3. decodes one row for each generating request, all in one batch, and samples each
   request's next token with its own sampler chain;
4. decodes prompt chunks of newly admitted requests, up to PROMPT_BUDGET tokens a step,
   so that a long prompt delays the others' next tokens by one chunk, not the whole
   prompt.

A prompt is decoded in chunks that end where `generate-text` ends them (multiples of
`Context.chunk`, and its last token), and each generated token as one row of a step. A
row's logits are the same bits whichever other rows share its step, because the server's
context takes the kernels that compute a row on its own: no flash attention (for a lone
query over 512 or more cached cells it splits the cache across threads, which a batch
does not) and no tiled K-quant matrix product (taken from 8 rows on; server.py turns it
off before libllama first runs). So a greedy request gets the same tokens at 16 clients
as alone at the server (`check_rows_exact` verifies it at start; docs/internals.md,
"Serving").
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gene_jit.llama import bindings
from gene_jit.llama.context import Context
from gene_jit.llama.errors import LlamaError
from gene_jit.llama.generate import TextAssembler
from gene_jit.llama.sampler import Sampler, Sampling
from gene_jit.serve.metrics import Metrics

if TYPE_CHECKING:
    from gene_jit.llama.model import Model

PROMPT_BUDGET = 256  # prompt tokens decoded per step at most (at least one chunk)

# what a job's sink receives: ("text", str), ("done", finish_reason) or ("error", message)
Sink = Callable[[str, Any], None]


class QueueFull(Exception):
    """Every slot is busy and the waiting queue is at its limit."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("the server is busy")
        self.retry_after = retry_after


@dataclass(eq=False)
class Job:
    """One generation: a prompt, its limits and sampling, and where its output goes."""

    tokens: list[int]
    max_tokens: int
    sampling: Sampling
    sink: Sink
    stops: list[str] = field(default_factory=list)
    # where the sink runs: post(events) hands a step's [(sink, kind, value)] over at once
    # (one wake-up of the event loop per step, not one per token); None: called here
    post: Callable[[list[tuple[Sink, str, Any]]], None] | None = None
    end_at_control: bool = False  # chat: a reply ends at any control token
    # state, written by the scheduler thread
    seq: int = -1
    pos: int = 0  # prompt tokens the slot holds
    pending: int | None = None  # sampled, to be decoded in the next step
    generated: int = 0
    cancelled: bool = False
    arrived: float = field(default_factory=time.perf_counter)
    admitted: float = 0.0
    first_token: float = 0.0
    sampler: Sampler | None = None
    text: TextAssembler | None = None

    def cancel(self) -> None:
        """The client is gone: the slot is freed at the next step."""
        self.cancelled = True


class Scheduler:
    """Owns the serving context; `submit` queues a job, the thread does the rest."""

    def __init__(self, model: Model, parallel: int, n_ctx: int, queue_limit: int, metrics: Metrics) -> None:
        self.model = model
        self.parallel = parallel
        self.queue_limit = queue_limit
        self.metrics = metrics
        self.ctx = _context(model, parallel, n_ctx)
        # a request moves to another sequence by a copy of its KV stream, which libllama's
        # contexts make; the engine's (a Context subclass) need no consecutive sequences
        self._movable = not hasattr(model, "engine")
        self.n_ctx = self.ctx.n_ctx_seq  # tokens one request may hold (libllama rounds)
        self._row: Any = ctypes.c_float * model.n_vocab
        self.exact = check_rows_exact(self.ctx, model)
        self._out: list[tuple[Job, str, Any]] = []  # events of this step, sent together
        self.slots: list[Job | None] = [None] * parallel
        self._prompt_len = [0] * parallel  # prompt length of the slot's last job
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._order = 0
        metrics.gauges = self.gauges
        self._thread = threading.Thread(target=self._run, name="gene-jit-serve-scheduler", daemon=True)
        self._thread.start()

    # -- the event loop's side ---------------------------------------------------------

    def submit(self, jobs: list[Job]) -> None:
        """Queue `jobs` (all or none); QueueFull when the queue has no room for them."""
        with self._cond:
            if self._stopping:
                raise LlamaError("the server is shutting down")
            free = self.slots.count(None)
            if len(self._waiting) + len(jobs) > self.queue_limit + free:
                raise QueueFull(self._retry_after())
            self._waiting.extend(jobs)
            self._cond.notify()

    def cancel(self, job: Job) -> None:
        with self._cond:
            job.cancel()
            if job in self._waiting:
                self._waiting.remove(job)
            self._cond.notify()

    def gauges(self) -> dict[str, int]:
        with self._cond:
            active = sum(j is not None for j in self.slots)
            return {"queue": len(self._waiting), "active": active, "slots": self.parallel}

    def _retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead, at the recent pace."""
        per = self.metrics.mean_request_seconds()
        return max(1, round(per * (len(self._waiting) + 1) / self.parallel))

    def stop(self) -> None:
        """Stop the thread; requests still running or waiting are told the server stopped."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()

    # -- the scheduler thread ----------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._waiting and not any(self.slots):
                    self._cond.wait()
                if self._stopping:
                    break
                self._drop_cancelled()
                self._admit()
                self._compact()
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any fault
                self._fail_all(exc)
            self._flush()
        self._fail_all(LlamaError("the server is shutting down"))
        self._flush()
        self.ctx.close()

    def _drop_cancelled(self) -> None:
        for job in self.slots:
            if job is not None and job.cancelled:
                self._release(job)

    def _admit(self) -> None:
        while self._waiting and None in self.slots:
            job = self._waiting.popleft()
            if job.cancelled:
                continue
            seq, keep = self._best_slot(job.tokens)
            self.ctx.trim(seq, keep)
            job.seq, job.pos = seq, len(self.ctx.tokens[seq])
            job.admitted = time.perf_counter()
            self._order += 1
            try:
                job.sampler = job.sampling.build(self.model)
            except LlamaError as exc:
                self._out.append((job, "error", exc.message))
                continue
            job.text = TextAssembler(job.stops)
            self.slots[seq] = job
            self.metrics.prompt(len(job.tokens), job.pos)

    def _compact(self) -> None:
        """Move the request in the highest busy slot into the lowest free one until the
        busy slots are 0..n-1. A step's rows are then one micro-batch: libllama splits a
        batch where sequence ids stop being consecutive, and rows of sequences 0, 2, 4
        and 6 cost about four one-row steps instead of one four-row step."""
        if not self._movable:
            return
        while None in self.slots:
            hole = self.slots.index(None)
            top = max((s for s, j in enumerate(self.slots) if j is not None), default=-1)
            if top < hole:
                return
            job = self.slots[top]
            assert job is not None
            self._move(job, hole)

    def _move(self, job: Job, dst: int) -> None:
        """Carry `job` to the free sequence `dst`: libllama copies the whole KV stream,
        cell for cell (before the next decode writes anything), so the job's rows stay
        the same bits. The slot it leaves keeps its copy, as a prompt cache."""
        ctx, src = self.ctx, job.seq
        bindings.lib().llama_memory_seq_cp(ctx.memory, src, dst, -1, -1)
        ctx.tokens[dst] = list(ctx.tokens[src])
        ctx.ends[dst] = list(ctx.ends[src])
        self.slots[dst], self.slots[src] = job, None
        self._prompt_len[src] = self._cached_prompt(job)
        job.seq = dst

    def _cached_prompt(self, job: Job) -> int:
        """How much of the job's prompt its slot holds on the prompt's own chunk schedule."""
        if job.pos < len(job.tokens):  # cut short inside the prompt
            return job.pos // self.ctx.chunk * self.ctx.chunk
        return job.pos

    def _best_slot(self, tokens: list[int]) -> tuple[int, int]:
        """The free slot whose cache can stand for the longest start of `tokens`, and
        how many cells of it to keep: whole prompt chunks of its last job only, so the
        prompt is decoded on the same chunk schedule as if nothing were cached."""
        chunk = self.ctx.chunk
        best, best_keep = -1, -1
        for seq, job in enumerate(self.slots):
            if job is not None:
                continue
            held = self.ctx.tokens[seq]
            limit = min(len(held), len(tokens) - 1, self._prompt_len[seq])
            common = 0
            while common < limit and held[common] == tokens[common]:
                common += 1
            keep = common // chunk * chunk
            if keep > best_keep:
                best, best_keep = seq, keep
        return best, best_keep

    def _step(self) -> None:
        ctx = self.ctx
        rows = [j for j in self.slots if j is not None and j.pending is not None]
        if rows:
            self._decode_rows(rows)
            self._flush()  # the tokens leave before the prompts below are decoded
        budget = PROMPT_BUDGET
        filling = [j for j in self.slots if j is not None and j.pos < len(j.tokens)]
        for job in sorted(filling, key=lambda j: j.admitted):
            if budget <= 0:
                break
            while job.pos < len(job.tokens) and budget > 0:
                end = min((job.pos // ctx.chunk + 1) * ctx.chunk, len(job.tokens))
                last = ctx.feed(job.seq, job.tokens[job.pos : end])
                budget -= end - job.pos
                job.pos = end
                if end == len(job.tokens):
                    self._sample(job, last)
                    self._flush()  # its first token leaves now

    def _decode_rows(self, rows: list[Job]) -> None:
        """One decode call with a row for each of `rows` (in sequence order: libllama puts
        consecutive sequence ids in one micro-batch), then their samples."""
        index = self.ctx.feed_rows([(j.seq, j.pending) for j in rows if j.pending is not None])
        greedy = self._greedy_rows(rows, index)
        for job, i in zip(rows, index, strict=True):
            job.pending = None
            self._sample(job, i, greedy.get(job.seq))

    def _greedy_rows(self, rows: list[Job], index: list[int]) -> dict[int, int]:
        """The greedy tokens of the step's plain-greedy rows, by sequence: one argmax over
        the logits rows where libllama keeps them side by side (one after another in batch
        order), else one per row."""
        plain = [(j.seq, i) for j, i in zip(rows, index, strict=True) if _plain_greedy(j.sampling)]
        if len(plain) < 2:
            return {}
        first = self.ctx.logits_ptr(index[0])
        last = self.ctx.logits_ptr(index[-1])
        n_vocab = self.model.n_vocab
        if last - first != (index[-1] - index[0]) * n_vocab * 4 or index != list(range(index[0], index[-1] + 1)):
            return {}
        block = (ctypes.c_float * (n_vocab * len(index))).from_address(first)
        best = np.argmax(np.ctypeslib.as_array(block).reshape(len(index), n_vocab), axis=1)
        return {seq: int(best[i - index[0]]) for seq, i in plain}

    def _sample(self, job: Job, index: int, greedy: int | None = None) -> None:
        """Sample the job's next token from the logits at batch `index` (`greedy`: already
        picked) and pass its text on."""
        assert job.sampler is not None and job.text is not None
        try:
            if greedy is not None:
                tok = greedy
            elif _plain_greedy(job.sampling):
                tok = self._argmax(index)
            else:
                tok = job.sampler.sample(self.ctx.ptr, index)
        except LlamaError as exc:
            self._release(job, ("error", exc.message))
            return
        if not job.first_token:
            job.first_token = time.perf_counter()
            self.metrics.first_token(job.first_token - job.arrived)
        model = self.model
        if model.is_control(tok) if job.end_at_control else model.is_eog(tok):
            self._emit(job, job.text.finish(cut=False))
            self._release(job, ("done", "stop"))
            return
        job.generated += 1
        self.metrics.tokens_out(1)
        self._emit(job, job.text.push(model.piece(tok)))
        if job.text.stopped:
            self._release(job, ("done", "stop"))
        elif job.generated >= job.max_tokens:
            self._emit(job, job.text.finish(cut=True))
            self._release(job, ("done", "length"))
        else:
            job.pending = tok

    def _argmax(self, index: int) -> int:
        """The greedy token, read where libllama keeps the logits: what libllama's greedy
        sampler picks (the first highest logit), without its copy of the whole vocabulary
        into a candidate array, which costs more than a tenth of a 16-row step."""
        row = self._row.from_address(self.ctx.logits_ptr(index))
        return int(np.argmax(np.ctypeslib.as_array(row)))

    def _emit(self, job: Job, text: str) -> None:
        if text:
            self._out.append((job, "text", text))

    def _flush(self) -> None:
        """Hand the events gathered since the last flush to their sinks, one `post` call
        per event loop."""
        out, self._out = self._out, []
        batches: dict[int, tuple[Callable[[list[tuple[Sink, str, Any]]], None], list[tuple[Sink, str, Any]]]] = {}
        for job, kind, value in out:
            if job.post is None:
                job.sink(kind, value)
            else:
                batches.setdefault(id(job.post), (job.post, []))[1].append((job.sink, kind, value))
        for post, events in batches.values():
            post(events)

    def _release(self, job: Job, event: tuple[str, Any] | None = None) -> None:
        """Free the job's slot (its cache stays for a later prompt that shares a start)."""
        if job.seq >= 0 and self.slots[job.seq] is job:
            self.slots[job.seq] = None
            self._prompt_len[job.seq] = self._cached_prompt(job)
        if job.sampler is not None:
            job.sampler.close()
            job.sampler = None
        if event is not None and not job.cancelled:
            self.metrics.finish(time.perf_counter() - job.admitted)
            self._out.append((job, *event))

    def _fail_all(self, exc: BaseException) -> None:
        """Every request in flight or waiting gets an error; the slots' caches are cleared
        (a failed decode may have left any of them unknown)."""
        if isinstance(exc, LlamaError):
            message = exc.message
        else:
            traceback.print_exception(exc, file=sys.stderr)
            message = f"internal error (a bug in gene-jit): {type(exc).__name__}: {exc}"
        with self._cond:
            jobs = [j for j in self.slots if j is not None] + list(self._waiting)
            self._waiting.clear()
        for job in jobs:
            self._release(job, ("error", message))
        self._prompt_len = [0] * self.parallel
        try:
            self.ctx.clear()
        except Exception:  # noqa: BLE001 - already reporting a fault
            pass


def _context(model: Model, parallel: int, n_ctx: int) -> Context:
    """The serving context: a sequence with its own KV stream per slot; libllama's without
    flash attention (its split-cache path for a lone query would make a row alone differ
    from the same row in a batch); the engine's is its own kind."""
    if hasattr(model, "engine"):
        return model.new_context(n_ctx=parallel * n_ctx, n_seq=parallel)
    return Context(model, n_ctx=parallel * n_ctx, n_seq=parallel, flash_attn=False)


def check_rows_exact(ctx: Context, model: Model, steps: int = 3) -> bool:
    """Whether a sequence decoded among others (up to 16) gets the same logits, bit for
    bit, as decoded alone, over a few steps (a kernel may compute a row's own logits the
    same and still write its cached cells differently); the context is left empty.
    False where this process ran libllama's tiled product before the server could turn
    it off (GGML_CPU_TILED_MM is read once per process)."""
    n = min(ctx.n_seq, 16)
    engine = getattr(model, "engine", None)
    if n < 2 or (engine is not None and not engine.device.is_cuda):
        return True  # on the CPU the engine runs each sequence's rows in a forward call of its own
    prompt = model.prompt_tokens("Exactness check: the rows of a batch")
    feed = [prompt[-1], *prompt[1 : steps]]

    def row(index: int) -> np.ndarray:
        return np.ctypeslib.as_array((ctypes.c_float * model.n_vocab).from_address(ctx.logits_ptr(index))).copy()

    try:
        ctx.feed(0, prompt[:-1])
        alone = [row(ctx.feed_rows([(0, tok)])[0]) for tok in feed]
        ctx.clear()
        ctx.feed(0, prompt[:-1])
        ctx.feed_prompts({s: prompt[s % len(prompt) :] or prompt for s in range(1, n)})
        together = [row(ctx.feed_rows([(0, tok)] + [(s, prompt[(s + k) % len(prompt)]) for s in range(1, n)])[0])
                    for k, tok in enumerate(feed)]
        return all(np.array_equal(a, b) for a, b in zip(alone, together, strict=True))
    finally:
        ctx.clear()


def _plain_greedy(s: Sampling) -> bool:
    """Greedy with nothing that looks beyond the highest logit (grammar, penalties)."""
    return s.temperature <= 0.0 and s.grammar is None and s.repeat_penalty == 1.0
