"""The Gene LLM library: models, tokenizers, generation, streaming, grammars, embeddings,
chat and batches, on `ffi/defun` bindings to libllama."""
