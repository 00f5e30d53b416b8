"""Serving throughput: `gene-jit serve` (continuous batching) against llama-cpp-python's
server (`python -m llama_cpp.server`, one request at a time), same model file, threads
and requests, in the same run.

Each level sends the same REQUESTS streaming completions (greedy, TOKENS tokens each, a
different prompt each) from 1, 4 and 16 concurrent clients; the two servers take turns
round by round, and each keeps its best round per level (on a machine shared with other
work, alternation spreads the interference evenly and the best round is the least
disturbed one, as bench/llm_bench.py does). For each
server and level: aggregate generated tokens/s (all tokens over the wall time of the
level), p50 and p95 time to first token (request sent to the first piece of text), and
how many replies differ from that server's own 1-client replies. Then gene-jit alone, on
prompts that share a long start: how many replies at 16 clients differ from the same
requests alone once the sequences pass 256 cached cells (the server decodes with kernels
that compute a row the same in any batch; docs/internals.md, "Serving").

Usage: python bench/serve_bench.py [--threads 2] [--tokens 64] [--clients 1,4,16]
                                   [--requests 16] [--rounds 2] [--model default] [--out FILE]
"""

from __future__ import annotations

import argparse
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


def run_level(port: int, model: str, texts: list[str], clients: int, tokens: int) -> Level:
    replies = [Reply() for _ in texts]
    todo = list(range(len(texts)))
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop(0)
            replies[i] = stream(port, model, texts[i], tokens)

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
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2, help="rounds per level; each server keeps its best")
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "serve_bench_cpu.txt"))
    args = ap.parse_args()
    from gene_jit.llama.resolve import resolve_model

    path = str(resolve_model(args.model))
    levels = [int(c) for c in args.clients.split(",")]
    texts = prompts(args.requests)
    # stopped by a signal, still stop the servers (the `finally` below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    servers = start_servers(path, args.threads, max(levels), 512)
    lines = [f"# python bench/serve_bench.py --threads {args.threads} --tokens {args.tokens} "
             f"--clients {args.clients} --requests {args.requests} --rounds {args.rounds}",
             f"model {path}, {args.threads} threads for both servers, {args.requests} streaming greedy "
             f"completions of {args.tokens} tokens per level, best of {args.rounds} alternating rounds; "
             f"{platform.machine()}, {os.cpu_count()} cores, "
             f"load average {os.getloadavg()[0]:.1f} at start"]
    results: dict[tuple[str, int], Level] = {}
    try:
        turn = 0
        for clients in levels:
            for _ in range(args.rounds):
                names = list(servers) if turn % 2 == 0 else list(reversed(servers))
                turn += 1
                for name in names:
                    level = run_level(servers[name][1], path, texts, clients, args.tokens)
                    print(report(name, level, results.get((name, levels[0]))), flush=True)
                    kept = results.get((name, clients))
                    if kept is None or level.tokens / level.wall > kept.tokens / kept.wall:
                        results[(name, clients)] = level
            for name in servers:
                lines.append(report(name, results[(name, clients)], results.get((name, levels[0]))))
        lines += exactness(servers["gene-jit serve"][1], path, args.requests, max(levels), args.tokens)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=60)
    lines += summary(results, levels)
    lines.append(f"load average {os.getloadavg()[0]:.1f} at the end")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-4:]))


def exactness(port: int, path: str, requests: int, clients: int, tokens: int) -> list[str]:
    """gene-jit's greedy replies to long prompts alone and among `clients`."""
    texts = long_prompts(requests)
    alone = run_level(port, path, texts, 1, tokens)
    together = run_level(port, path, texts, clients, tokens)
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
