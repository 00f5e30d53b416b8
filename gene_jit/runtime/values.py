"""Runtime values.

How Gene values live in Python (tier 0 and every library speak this):

| Gene       | Python                                            |
|------------|---------------------------------------------------|
| nil        | None                                              |
| true/false | bool                                              |
| int        | int, kept within int64 (overflow is a Gene error) |
| float      | float                                             |
| string     | str                                               |
| symbol     | Symbol (interned; `a/b` keeps its full name)      |
| array      | list                                              |
| map        | dict with str keys, insertion ordered             |
| set        | GeneSet                                           |
| gene       | Gene(type, props, children)                       |
| range      | Range                                             |
| `_`        | PLACEHOLDER                                       |
| function   | a Python callable; Gene functions carry `__gene_name__` |
| tensor     | gene_jit.tensor.Tensor (see tensor_kernels)       |

Classes, instances and namespaces are defined here too, so that every stage agrees.
"""

from __future__ import annotations

import numbers
from typing import Any

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1


class Symbol:
    """An interned symbol. `Symbol("x") is Symbol("x")`."""

    __slots__ = ("name", "__weakref__")
    _table: dict[str, Symbol] = {}
    name: str

    def __new__(cls, name: str) -> Symbol:
        sym = cls._table.get(name)
        if sym is None:
            sym = object.__new__(cls)
            sym.name = name
            cls._table[name] = sym
        return sym

    @property
    def parts(self) -> list[str]:
        if self.name == "/" or "/" not in self.name:
            return [self.name]
        return self.name.split("/")

    def __repr__(self) -> str:
        return f"Symbol({self.name!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Symbol, (self.name,))


class Placeholder:
    """The value of `_`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "_"


PLACEHOLDER = Placeholder()


class Gene:
    """Gene data `(type ^k v c1 c2)`."""

    __slots__ = ("type", "props", "children")

    def __init__(
        self,
        type: Any = None,
        props: dict[str, Any] | None = None,
        children: list[Any] | None = None,
    ) -> None:
        self.type = type
        self.props = props if props is not None else {}
        self.children = children if children is not None else []

    def __eq__(self, other: object) -> bool:
        from gene_jit.runtime.equality import gene_equal

        return gene_equal(self, other)

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"Gene({self.type!r}, {self.props!r}, {self.children!r})"


class GeneSet:
    """A set `#[a b]`: insertion ordered, structural membership."""

    __slots__ = ("items",)

    def __init__(self, items: list[Any] | None = None) -> None:
        self.items: list[Any] = []
        for item in items or []:
            self.add(item)

    def add(self, item: Any) -> None:
        from gene_jit.runtime.equality import gene_equal

        if not any(gene_equal(item, x) for x in self.items):
            self.items.append(item)


class Range:
    """`(a .. b)` (end included) and `(range a b [step])` (end excluded)."""

    __slots__ = ("start", "end", "step", "inclusive")

    def __init__(self, start: Any, end: Any, step: Any = 1, inclusive: bool = True) -> None:
        self.start = start
        self.end = end
        self.step = step
        self.inclusive = inclusive

    def __iter__(self) -> Any:
        if self.step == 0:
            return iter(())
        if self.inclusive:
            stop = self.end + (1 if self.step > 0 else -1)
        else:
            stop = self.end
        if all(isinstance(x, int) for x in (self.start, self.end, self.step)):
            return iter(range(self.start, stop, self.step))
        return _float_range(self.start, self.end, self.step, self.inclusive)

    def _ints(self) -> range | None:
        """The Python range of an int range (counted, never walked); None for floats."""
        if not all(type(x) is int for x in (self.start, self.end, self.step)) or self.step == 0:
            return range(0) if self.step == 0 else None
        stop = (self.end + (1 if self.step > 0 else -1)) if self.inclusive else self.end
        return range(self.start, stop, self.step)

    def __len__(self) -> int:
        ints = self._ints()
        return len(ints) if ints is not None else sum(1 for _ in self)

    def __getitem__(self, i: int) -> Any:
        """Element `i` (negative from the end): with `__len__`, the sequence protocol
        that Python libraries read (`(np/array (range 0 3))` is [0 1 2], not an object)."""
        if not isinstance(i, int) or isinstance(i, bool):
            raise TypeError(f"a range index must be an int, got {type(i).__name__}")
        ints = self._ints()
        return ints[i] if ints is not None else list(self)[i]


def _float_range(start: float, end: float, step: float, inclusive: bool) -> Any:
    x = start
    while (
        (x < end or (inclusive and x == end)) if step > 0 else (x > end or (inclusive and x == end))
    ):
        yield x
        x += step


class GeneClass:
    """A Gene class `(class A < B ...)`: methods by name, an optional parent.

    Calling the class object makes an instance, as `(new A args...)` does.
    """

    __slots__ = ("name", "parent", "methods", "members", "__weakref__")

    def __init__(self, name: str, parent: GeneClass | None = None) -> None:
        self.name = name
        self.parent = parent
        self.methods: dict[str, Any] = {}
        self.members: dict[str, Any] = {}

    def find_method(self, name: str) -> Any:
        cls: GeneClass | None = self
        while cls is not None:
            m = cls.methods.get(name)
            if m is not None:
                return m
            cls = cls.parent
        return None

    def is_subclass(self, other: GeneClass) -> bool:
        cls: GeneClass | None = self
        while cls is not None:
            if cls is other:
                return True
            cls = cls.parent
        return False

    def __call__(self, *args: Any, **props: Any) -> Instance:
        inst = Instance(self)
        ctor = self.find_method("ctor")
        if ctor is not None:
            declared = getattr(ctor, "__gene_kwonly__", None)
            if declared is not None:
                props = {k: v for k, v in props.items() if k in declared}
            ctor(inst, *args, **props)
        else:
            for k, v in props.items():
                inst.props[k] = v
        return inst

    def __repr__(self) -> str:
        return f"(class {self.name})"


class Instance:
    """An instance of a Gene class; `props` holds `/x` values (printed `(A ^x 1)`)."""

    __slots__ = ("cls", "props", "__weakref__")

    def __init__(self, cls: GeneClass) -> None:
        self.cls = cls
        self.props: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Instance({self.cls.name}, {self.props!r})"


class GeneEnum:
    """`(enum Color red green = 5 blue)`: members by name, in order."""

    __slots__ = ("name", "members")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[str, EnumMember] = {}


class EnumMember:
    """One member of an enum: `Color/red`, with its int value."""

    __slots__ = ("enum", "name", "value")

    def __init__(self, enum: GeneEnum, name: str, value: int) -> None:
        self.enum = enum
        self.name = name
        self.value = value

    def __repr__(self) -> str:
        return f"{self.enum.name}/{self.name}"


def as_gene_number(v: Any) -> Any:
    """A NumPy (or other) integer or real scalar as a Python int or float; else `v`."""
    if type(v) in (int, float) or isinstance(v, bool) or not isinstance(v, numbers.Real):
        return v
    return int(v) if isinstance(v, numbers.Integral) else float(v)
