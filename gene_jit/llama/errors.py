"""Error types of the LLM library: the user's mistakes with models, prompts, grammars and
generation settings. All are `GeneError`s, so Gene programs see a clear message with the
location of the call, never a Python traceback."""

from __future__ import annotations

from gene_jit.runtime.errors import GeneError


class LlamaError(GeneError):
    """A mistake in how a Gene program uses a language model."""

    kind = "llm error"


class ModelNotFoundError(LlamaError):
    """No GGUF file matches the name or path given to `model/create`."""

    kind = "model not found"


class BadModelError(LlamaError):
    """The file exists but is not a GGUF model that libllama can load."""

    kind = "bad model file"


class GrammarError(LlamaError):
    """A GBNF grammar or JSON schema that cannot constrain generation."""

    kind = "grammar error"


class ContextFullError(LlamaError):
    """A prompt that does not fit in the model's context window."""

    kind = "context full"
