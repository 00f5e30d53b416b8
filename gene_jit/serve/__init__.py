"""`gene-jit serve`: an OpenAI-compatible HTTP server over one model, with continuous
batching.

- `scheduler`: one thread owns one libllama context with a sequence per slot and decodes
  every active request in one batch per step (gene_jit.serve.scheduler).
- `bodies`: the OpenAI request bodies, checked field by field (`ApiError` for a mistake).
- `app`: the Starlette application (routes, server-sent events, errors, API key).
- `metrics`: the Prometheus text of `/metrics`.
- `server`: the uvicorn runner used by the command line and by Gene's `(serve ...)`.
"""

from __future__ import annotations
