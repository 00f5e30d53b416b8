"""Why tier 1 leaves a call into Python to tier 0, for `gene-jit profile`.

Native code types its callees; a Python function has no type tier 1 can compile a call
to, so the function that calls one stays in tier 0, which calls it as Python does.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from gene_jit.py.objects import is_python_object


def python_callee(b: Any, name: str) -> str | None:
    """The reason for `(name ...)` when `name` (`f`, `np/linalg/norm`) is bound to a value
    of a Python library as the function's globals stand now, else None."""
    from gene_jit.frontend.compiler_core import pyid
    from gene_jit.runtime.registry import BUILTINS, Namespace

    state = getattr(b.program.resolver, "states", {}).get(b.key)
    globals_ = getattr(getattr(state, "info", None), "namespace", None)
    if not isinstance(globals_, dict):
        return None
    parts = name.split("/") if "/" in name[1:] else [name]
    value = globals_.get(pyid(parts[0]), BUILTINS.get(parts[0]))
    for part in parts[1:]:
        if isinstance(value, Namespace):
            value = value.members.get(part)
        elif isinstance(value, ModuleType):
            value = getattr(value, part, None)
        elif is_python_object(value):
            break
        else:
            return None
    if not is_python_object(value):
        return None
    what = "callable" if callable(value) else "object"
    return (f"calls {name}, a Python {what} ({type(value).__name__}): "
            "calls into Python run in tier 0")
