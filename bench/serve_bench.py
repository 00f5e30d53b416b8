"""Serving throughput: `gene-jit serve` (continuous batching) against llama-cpp-python's
server (`python -m llama_cpp.server`, one request at a time), same model file, threads
and requests, in the same run.

Each level sends the same REQUESTS streaming completions (greedy, TOKENS tokens each, a
different prompt each) from 1, 4 and 16 concurrent clients, for each reply length given
(32 tokens is short for chat, so the default also runs 128; a configuration such as
8/128/16/64 gives the requests those lengths in turn, so that they end at different
steps, as chat replies do); the two servers take turns
round by round, and each keeps its best round per level (on a machine shared with other
work, alternation spreads the interference evenly and the best round is the least
disturbed one, as bench/llm_bench.py does). For each
server and level: aggregate generated tokens/s (all tokens over the wall time of the
level), p50 and p95 time to first token (request sent to the first piece of text), and
how many replies differ from that server's own 1-client replies. Then gene-jit alone, on
prompts that share a long start: how many replies at 16 clients differ from the same
requests alone once the sequences pass 256 cached cells (the server decodes with kernels
that compute a row the same in any batch; docs/internals.md, "Serving").

Last, the ceiling that libllama's kernels put on gene-jit's 16-client / 1-client ratio:
the least time of a decode step of 1 and of 16 rows, and of one prompt, in a context
set up as the server's (`ceiling_probe`, in a process of its own); with those, a
request alone costs prompt + (TOKENS - 1) one-row steps and 16 requests together cost
16 prompts + (TOKENS - 1) 16-row steps, with no HTTP, sampling or scheduling at all.

Results are appended to OUT, dated, with the load average at start and end.

Usage: python bench/serve_bench.py [--threads 2] [--tokens 32,128] [--clients 1,4,16]
                                   [--requests 16] [--rounds 3] [--model default] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout

TOPICS = [
    "a lighthouse keeper", "a robot learning to paint", "the last day of summer", "a dragon who hated fire",
    "a detective in Venice", "a mountain village", "an old clockmaker", "a ship lost in fog",
    "a cat who ran a bakery", "the first city on Mars", "a forgotten library", "twins separated at birth",
    "a storm over the prairie", "a violin that sang alone", "a garden under the sea", "the king's last letter",
]


def prompts(n: int) -> list[str]:
    return [f"Write a long story about {TOPICS[i % len(TOPICS)]}.\n\nOnce upon a time," for i in range(n)]


# a shared start of about 230 tokens: replies then run past the 256 cached cells where
# libllama's flash attention would take another path for a lone query than for a batch
PREAMBLE = " ".join(
    f"Rule {i}: a story told here has a beginning, a middle and an end, and a hero who changes."
    for i in range(1, 12)
)


def long_prompts(n: int) -> list[str]:
    return [f"{PREAMBLE}\n\nWrite a story about {TOPICS[i % len(TOPICS)]}.\n\nOnce upon a time,"
            for i in range(n)]


def differing(level: Level, base: Level) -> tuple[int, list[int]]:
    """Replies unlike the base run's, and where each first differs (characters in)."""
    where = []
    for a, b in zip(level.replies, base.replies, strict=True):
        if a.text != b.text:
            where.append(next((i for i, (x, y) in enumerate(zip(a.text, b.text, strict=False)) if x != y),
                              min(len(a.text), len(b.text))))
    return len(where), where


@dataclass
class Reply:
    text: str = ""
    tokens: int = 0
    ttft: float = 0.0
    error: str = ""


@dataclass
class Level:
    clients: int
    wall: float
    replies: list[Reply] = field(default_factory=list)
    load: float = field(default_factory=lambda: os.getloadavg()[0])  # 1-minute load average after it

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.replies)

    def ttft(self, q: float) -> float:
        values = sorted(r.ttft for r in self.replies)
        return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stream(port: int, model: str, prompt: str, tokens: int) -> Reply:
    """One streaming completion; each SSE chunk with text counts as one token (both
    servers send one chunk per generated token)."""
    reply = Reply()
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0,
                       "stream": True})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    try:
        conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            reply.error = f"HTTP {resp.status}: {resp.read()[:200]!r}"
            return reply
        parts = []
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            event = json.loads(line[6:])
            text = event["choices"][0].get("text", "") if event.get("choices") else ""
            if text:
                if not reply.tokens:
                    reply.ttft = time.perf_counter() - t0
                reply.tokens += 1
                parts.append(text)
        reply.text = "".join(parts)
    finally:
        conn.close()
    return reply


def run_level(port: int, model: str, texts: list[str], clients: int, tokens: list[int]) -> Level:
    """Each request `i` asks for tokens[i % len(tokens)] tokens."""
    replies = [Reply() for _ in texts]
    todo = list(range(len(texts)))
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop(0)
            replies[i] = stream(port, model, texts[i], tokens[i % len(tokens)])

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Level(clients, time.perf_counter() - t0, replies)


def wait_ready(proc: subprocess.Popen[bytes], port: int, name: str) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited while starting (status {proc.returncode})")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/v1/models")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{name} did not start")


def start_servers(path: str, threads: int, parallel: int, n_ctx: int) -> dict[str, tuple[Any, int]]:
    gene_port, llama_port = free_port(), free_port()
    gene = subprocess.Popen(
        [sys.executable, "-m", "gene_jit", "serve", "--model", path, "--port", str(gene_port),
         "--parallel", str(parallel), "--n-ctx", str(n_ctx), "--threads", str(threads)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # gene-jit serve makes libllama's OpenMP threads wait passively (gene_jit/serve/server.py);
    # the peer gets the same setting, so that both run the same kernels the same way
    env = {**os.environ, "OMP_WAIT_POLICY": "passive"}
    llama = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", path, "--port", str(llama_port),
         "--host", "127.0.0.1", "--n_threads", str(threads), "--n_threads_batch", str(threads),
         "--n_ctx", str(n_ctx), "--verbose", "False",
         # by default it drops a stream when another request comes in; queue them instead
         "--interrupt_requests", "False"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wait_ready(gene, gene_port, "gene-jit serve")
    wait_ready(llama, llama_port, "llama_cpp.server")
    return {"gene-jit serve": (gene, gene_port), "llama-cpp-python server": (llama, llama_port)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", default="32,128",
                    help="reply lengths, each a configuration of its own (A/B/C: the requests' lengths in turn)")
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3, help="rounds per level; each server keeps its best")
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "serve_bench_cpu.txt"))
    ap.add_argument("--ceiling-probe", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    from gene_jit.llama.resolve import resolve_model

    path = str(resolve_model(args.model))
    if args.ceiling_probe:
        print(json.dumps(ceiling_probe(path, args.threads)))
        return
    levels = [int(c) for c in args.clients.split(",")]
    lengths = args.tokens.split(",")
    texts = prompts(args.requests)
    # stopped by a signal, still stop the servers (the `finally` below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    servers = start_servers(path, args.threads, max(levels), 512)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## {now}",
             f"# python bench/serve_bench.py --threads {args.threads} --tokens {args.tokens} "
             f"--clients {args.clients} --requests {args.requests} --rounds {args.rounds}",
             f"model {path}, {args.threads} threads for both servers, {args.requests} streaming greedy "
             f"completions per level, best of {args.rounds} alternating rounds; "
             f"{platform.machine()}, {os.cpu_count()} cores, "
             f"load average {os.getloadavg()[0]:.1f} at start"]
    configs: dict[str, dict[tuple[str, int], Level]] = {}
    try:
        for tokens in lengths:
            results = configs[tokens] = run_config(servers, path, texts, levels, tokens, args.rounds)
            lines.append(f"-- replies of {tokens} tokens{' in turn' if '/' in tokens else ''}")
            for clients in levels:
                for name in servers:
                    lines.append(report(name, results[(name, clients)], results.get((name, levels[0]))))
        lines += exactness(servers["gene-jit serve"][1], path, args.requests, max(levels), _lengths(lengths[0])[0])
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=60)
    start = len(lines)
    for tokens in lengths:
        lines += [f"{tokens}-token replies: {line}" for line in summary(configs[tokens], levels)]
    lines += ceiling(path, args.threads, lengths, configs, levels)
    lines.append(f"load average {os.getloadavg()[0]:.1f} at the end")
    with Path(args.out).open("a") as out:
        out.write("\n".join(lines) + "\n\n")
    print("\n".join(lines[start:]))


def _lengths(config: str) -> list[int]:
    return [int(t) for t in config.split("/")]


def run_config(servers: dict[str, tuple[Any, int]], path: str, texts: list[str], levels: list[int],
               tokens: str, rounds: int) -> dict[tuple[str, int], Level]:
    """Every level with replies of `tokens` tokens, the servers taking turns; each keeps
    its best round per level."""
    results: dict[tuple[str, int], Level] = {}
    turn = 0
    for clients in levels:
        for _ in range(rounds):
            names = list(servers) if turn % 2 == 0 else list(reversed(servers))
            turn += 1
            for name in names:
                level = run_level(servers[name][1], path, texts, clients, _lengths(tokens))
                print(f"[{tokens} tokens] " + report(name, level, results.get((name, levels[0]))), flush=True)
                kept = results.get((name, clients))
                if kept is None or level.tokens / level.wall > kept.tokens / kept.wall:
                    results[(name, clients)] = level
    return results


def ceiling_probe(path: str, threads: int, reps: int = 40) -> dict[str, float]:
    """Least seconds of a decode step of 1 and of 16 rows, and of a bench prompt (the
    least time per token of one prompt, times their mean length), interleaved, in a
    context made as the server makes it (same kernels: run with the server's settings)."""
    from gene_jit.llama.model import Model
    from gene_jit.serve.scheduler import _context

    model = Model(path, threads=threads, repack=False, progress=False)
    ctx = _context(model, 16, 512)
    toks = [model.tokenize(t) for t in prompts(16)]
    mean = sum(map(len, toks)) / len(toks)
    for s, t in enumerate(toks):
        ctx.feed(s, t)
    best = {"step1": 1e9, "step16": 1e9, "prompt": 1e9, "prompt_tokens": mean}
    for r in range(reps):
        s, t = r % 16, toks[r % 16]
        ctx.trim(s, 0)
        t0 = time.perf_counter()
        ctx.feed(s, t)
        best["prompt"] = min(best["prompt"], (time.perf_counter() - t0) / len(t) * mean)
        for n, key in ((1, "step1"), (16, "step16")):
            if len(ctx.tokens[15]) > 400:  # room left in every sequence
                ctx.clear()
                for q, u in enumerate(toks):
                    ctx.feed(q, u)
            t0 = time.perf_counter()
            ctx.feed_rows([(q, 1000 + 7 * q + r) for q in range(n)])
            best[key] = min(best[key], time.perf_counter() - t0)
    ctx.close()
    return best


def ceiling(path: str, threads: int, lengths: list[str], configs: dict[str, dict[tuple[str, int], Level]],
            levels: list[int]) -> list[str]:
    env = {**os.environ, "OMP_WAIT_POLICY": "passive", "GGML_CPU_TILED_MM": "0"}  # as gene-jit serve runs
    out = subprocess.run([sys.executable, __file__, "--ceiling-probe", "--model", path, "--threads", str(threads)],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    t = json.loads(out.stdout.strip().splitlines()[-1])
    lines = [f"ceiling (libllama alone, least of 40 interleaved; load {os.getloadavg()[0]:.1f}): decode step 1 row "
             f"{1000 * t['step1']:.1f} ms, 16 rows {1000 * t['step16']:.1f} ms ({t['step16'] / t['step1']:.2f}x); "
             f"one prompt ({t['prompt_tokens']:.1f} tokens) {1000 * t['prompt']:.1f} ms"]
    top, low = max(levels), min(levels)
    for config in lengths:
        if "/" in config:
            continue
        tokens = int(config)
        alone = t["prompt"] + (tokens - 1) * t["step1"]
        together = 16 * t["prompt"] + (tokens - 1) * t["step16"]
        res = configs[config]
        got = (res[("gene-jit serve", top)].tokens / res[("gene-jit serve", top)].wall) / (
            res[("gene-jit serve", low)].tokens / res[("gene-jit serve", low)].wall)
        lines.append(f"{tokens}-token replies: 16 requests together / alone, kernels only: "
                     f"{16 * alone / together:.2f}x (decode steps alone: {16 * t['step1'] / t['step16']:.2f}x); "
                     f"measured {top} clients / {low} client: {got:.2f}x")
    return lines


def exactness(port: int, path: str, requests: int, clients: int, tokens: int) -> list[str]:
    """gene-jit's greedy replies to long prompts alone and among `clients`."""
    texts = long_prompts(requests)
    alone = run_level(port, path, texts, 1, [tokens])
    together = run_level(port, path, texts, clients, [tokens])
    n, where = differing(together, alone)
    first = f"; they first differ after {sorted(where)} characters" if where else ""
    line = (f"gene-jit serve, prompts of ~{len(PREAMBLE) // 4} tokens + {tokens} generated (past 256 cells): "
            f"{n}/{requests} replies at {clients} clients differ from the same requests alone{first}")
    print(line, flush=True)
    return [line]


def report(name: str, level: Level, base: Level | None) -> str:
    errors = [r.error for r in level.replies if r.error]
    same = "" if base is None or base is level else (
        f"   replies unlike its 1-client ones: {differing(level, base)[0]}/{len(level.replies)}")
    return (f"{name:<24} {level.clients:>2} clients  {level.tokens / level.wall:7.1f} tok/s  "
            f"TTFT p50 {level.ttft(0.5):6.2f} s  p95 {level.ttft(0.95):6.2f} s  "
            f"({level.tokens} tokens in {level.wall:.1f} s{', errors: ' + errors[0] if errors else ''}, "
            f"load {level.load:.1f}){same}")


def summary(results: dict[tuple[str, int], Level], levels: list[int]) -> list[str]:
    top, low = max(levels), min(levels)
    gene, peer = results[("gene-jit serve", top)], results[("llama-cpp-python server", top)]
    alone = results[("gene-jit serve", low)]

    def rate(level: Level) -> float:
        return level.tokens / level.wall

    return [
        f"{top} clients: gene-jit serve / llama-cpp-python server: {rate(gene) / rate(peer):.2f}x tokens/s; "
        f"gene-jit {top} clients / gene-jit {low} client: {rate(gene) / rate(alone):.2f}x",
        f"{top} clients: p95 time to first token: gene-jit {gene.ttft(0.95):.2f} s, "
        f"llama-cpp-python {peer.ttft(0.95):.2f} s",
        f"median of all TTFTs at {top} clients: gene-jit {statistics.median(r.ttft for r in gene.replies):.2f} s",
    ]


if __name__ == "__main__":
    main()
