"""Lazy registration of the libraries that Gene programs see as namespaces and builtins.

Each library registers its Gene-level names here without being imported: the module is
imported on first use (so `import numba` or loading libllama costs nothing until needed).
"""

from __future__ import annotations

from gene_jit.runtime.registry import lazy_builtin, lazy_namespace

_done = False

# Top-level builtins of the LLM library (Gene name -> attribute of gene_jit.llama.gene_api).
LLAMA_BUILTINS: dict[str, str] = {
    "generate-text": "generate_text",
    "generate-stream": "generate_stream",
    "generate-with-grammar": "generate_with_grammar",
    "generate-json": "generate_json",
    "batch-generate": "batch_generate",
    "tokenize": "tokenize",
    "decode": "decode",
    "format-chat-prompt": "format_chat_prompt_fn",
    "format-qa-prompt": "format_qa_prompt",
    "generate-code": "generate_code",
    "find-similar": "find_similar",
    "get-next-token": "get_next_token",
    "EOS": "EOS",
    "json-grammar": "json_grammar_value",
    "chat-session": "chat_session",
    "chat-send": "chat_send",
    "chat-history": "chat_history",
}


def register_all() -> None:
    global _done
    if _done:
        return
    _done = True
    # tier 1 installs its hooks into the tiering seam (the frontend never imports codegen)
    from gene_jit.codegen.hooks import install as install_jit

    install_jit()
    # tensors and devices
    lazy_namespace("tensor", "gene_jit.tensor.gene_api")
    lazy_namespace("device", "gene_jit.tensor.gene_api")
    lazy_namespace("kernel", "gene_jit.tensor_kernels.gene_kernels")  # C-ABI kernels
    lazy_namespace("tensor", "gene_jit.engine.ops")  # the native engine's ops, after the above
    # foreign functions
    lazy_namespace("ffi", "gene_jit.ffi.gene_api")
    # Python libraries, and tensors to and from NumPy, PyTorch and safetensors
    lazy_namespace("py", "gene_jit.py.gene_api")
    lazy_namespace("tensor", "gene_jit.tensor.interop")
    # language models
    lazy_namespace("model", "gene_jit.llama.gene_api")
    lazy_namespace("tokenizer", "gene_jit.llama.gene_api")
    for gene_name, attr in LLAMA_BUILTINS.items():
        lazy_builtin(gene_name, "gene_jit.llama.gene_api", attr)
    lazy_builtin("serve", "gene_jit.serve.gene_api", "serve")  # the OpenAI-compatible server
