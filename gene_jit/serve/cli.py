"""`gene-jit serve`: the command line of the OpenAI-compatible server."""

from __future__ import annotations

import argparse

from gene_jit.serve.server import ENGINES, LOCALHOST, Settings, serve


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="'default' (Gemma 3 270M) or a GGUF name or path")
    p.add_argument("--engine", choices=ENGINES, default="libllama",
                   help="libllama (default) or gene: gene-jit's own engine, on the CPU")
    p.add_argument("--host", default=LOCALHOST, help=f"address to listen on (default {LOCALHOST})")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080; 0 picks a free one)")
    p.add_argument("--parallel", type=int, default=4, help="requests decoded together (default 4)")
    p.add_argument("--n-ctx", type=int, default=2048, help="tokens each request may hold (default 2048)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for libllama")
    p.add_argument("--queue", type=int, default=None,
                   help="requests that may wait for a slot before the server answers 429 (default 16 per slot)")
    p.add_argument("--repack", action="store_true",
                   help="load weights in libllama's repacked CPU layouts (faster alone, slower in batches)")


def run(args: argparse.Namespace) -> int:
    serve(Settings(model=args.model, host=args.host, port=args.port, parallel=args.parallel, n_ctx=args.n_ctx,
                   api_key=args.api_key, threads=args.threads, queue=args.queue,
                   repack=args.repack, engine=args.engine))
    return 0
