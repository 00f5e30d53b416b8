"""`(throw)`, `$ex`, `catch Cls` and `(case v when pattern)`: what tier-0 code calls to
raise Gene values and to match them."""

from __future__ import annotations

from typing import Any

from gene_jit.runtime.errors import GeneError, GeneThrow
from gene_jit.runtime.ops import _is_num, display, is_a
from gene_jit.runtime.values import GeneClass, Instance, Range

_NOTHING = object()  # `(throw)` with no value


def make_throw(value: Any = _NOTHING, message: Any = None) -> BaseException:
    """The exception raised by `(throw)` / `(throw v)` / `(throw Cls "msg")`: `$ex` is
    the thrown value (nil for `(throw nil)`), the word `exception` for `(throw)`."""
    if value is _NOTHING:
        return GeneThrow("exception")
    if isinstance(value, GeneError):
        return value
    if isinstance(value, GeneClass):
        inst = value(message) if value.find_method("ctor") else value()
        if message is not None and "message" not in inst.props:
            inst.props["message"] = message
        value = inst
    if value is None:
        err = GeneThrow("nil")
        err.value = None  # GeneError takes a missing value to mean the message
        return err
    text = display(value) if not isinstance(value, Instance) else _instance_message(value)
    return GeneThrow(text, value=value)


def _instance_message(inst: Instance) -> str:
    msg = inst.props.get("message")
    return f"{inst.cls.name}: {display(msg)}" if msg is not None else display(inst)


def ex_value(err: BaseException) -> Any:
    """What `$ex` is inside `catch`: the thrown value, or the error itself."""
    if isinstance(err, GeneThrow):
        return err.value
    return err


def catch_matches(err: BaseException, cls: Any) -> bool:
    value = ex_value(err)
    if isinstance(cls, GeneClass):
        return type(value) is Instance and value.cls.is_subclass(cls)
    if isinstance(cls, type):
        return isinstance(err, cls) or isinstance(value, cls)
    from gene_jit.runtime.equality import gene_equal

    return gene_equal(value, cls)


def case_matches(value: Any, pattern: Any) -> bool:
    """`(case v when pattern ...)`: equality, array membership, range, class."""
    from gene_jit.runtime.equality import gene_equal

    if type(pattern) is list:
        return any(gene_equal(value, p) for p in pattern)
    if isinstance(pattern, Range):
        if not _is_num(value):
            return False
        lo, hi = pattern.start, pattern.end
        return bool(lo <= value <= hi) if pattern.inclusive else bool(lo <= value < hi)
    if isinstance(pattern, GeneClass):
        return is_a(value, pattern)
    return gene_equal(value, pattern)
