"""Operators and member access for tier-0 code: the slow paths behind inline operators.

Tier 0 emits plain Python operators where Python's semantics equal Gene's for valid
operands (and raise for invalid ones); the functions here handle the rest: int64
overflow, mixed kinds, `/` on ints, comparisons of non-numbers, structural equality,
member access `a/b/0`, method calls `(obj .m args)` (through the `METHODS` table, which
other runtime modules extend with `method`), spread, interpolation, ranges and gene data.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

from gene_jit.frontend.forms import Span
from gene_jit.py.objects import call_method as python_method
from gene_jit.py.objects import is_python_object
from gene_jit.py.objects import member as python_member
from gene_jit.py.objects import select as python_select
from gene_jit.py.objects import set_member as python_set
from gene_jit.runtime.errors import (
    GeneError,
    GeneIndexError,
    GeneNameError,
    GeneOverflowError,
    GeneTypeError,
)
from gene_jit.runtime.ops_ndarray import array_get, array_set, array_values
from gene_jit.runtime.ops_ndarray import is_ndarray as _is_ndarray
from gene_jit.runtime.registry import BUILTINS, LazyBuiltin, Namespace
from gene_jit.runtime.values import (
    INT_MAX,
    INT_MIN,
    PLACEHOLDER,
    EnumMember,
    Gene,
    GeneClass,
    GeneEnum,
    GeneSet,
    Instance,
    Range,
    Symbol,
    as_gene_number,
)

_NUM = (int, float)


def kind_name(v: Any) -> str:
    """The Gene kind of `v`, for error messages."""
    if v is None:
        return "nil"
    if v is True or v is False:
        return "bool"
    names = {
        int: "int",
        float: "float",
        str: "string",
        list: "array",
        dict: "map",
        Symbol: "symbol",
        Gene: "gene",
        Range: "range",
        GeneSet: "set",
        Instance: "instance",
        GeneClass: "class",
        Namespace: "namespace",
    }
    name = names.get(type(v))
    if name is not None:
        return name
    if callable(v):
        return "function"
    gene_type = getattr(type(v), "__gene_type__", None)  # a tensor, an FFI buffer, ...
    return gene_type if isinstance(gene_type, str) else type(v).__name__


def a_kind(v: Any) -> str:
    """`kind_name(v)` with its article, for error messages: `an array`, `a map`, `nil`."""
    name = kind_name(v)
    if name == "nil":
        return name
    return ("an " if name[:1] in "aeiouAEIOU" else "a ") + name


def _is_num(v: Any) -> bool:
    return type(v) is int or type(v) is float


def _nums(op: str, a: Any, b: Any) -> tuple[Any, Any]:  # a NumPy scalar as its int or float
    if not (_is_num(a) and _is_num(b)) and not (_is_num(a := as_gene_number(a)) and _is_num(b := as_gene_number(b))):
        raise GeneTypeError(f"{op} expects numbers, got {kind_name(a)} and {kind_name(b)}")
    return a, b


def check_pair(op: str, a: Any, b: Any) -> Any:
    """`b`, once neither operand of `a op b` is a boolean (the operator's type error
    otherwise); tier 0's check of a call's result that no proof covers."""
    if a is True or a is False or b is True or b is False:
        raise GeneTypeError(f"{op} expects numbers, got {kind_name(a)} and {kind_name(b)}")
    return b


def check_int(r: Any, op: str = "arithmetic") -> Any:
    if type(r) is int and not (INT_MIN <= r <= INT_MAX):
        raise GeneOverflowError(f"integer overflow in {op}: result exceeds 64 bits")
    return r


def _tensor(a: Any, b: Any = None) -> bool:
    """A tensor operand: `+ - * /` and negation are its elementwise ops (tensor.py)."""
    return hasattr(a, "__gene_tensor__") or hasattr(b, "__gene_tensor__")


def add(a: Any, b: Any) -> Any:
    if _tensor(a, b):
        return a + b
    a, b = _nums("+", a, b)
    return check_int(a + b, "+")


def sub(a: Any, b: Any) -> Any:
    if _tensor(a, b):
        return a - b
    a, b = _nums("-", a, b)
    return check_int(a - b, "-")


def mul(a: Any, b: Any) -> Any:
    if _tensor(a, b):
        return a * b
    a, b = _nums("*", a, b)
    return check_int(a * b, "*")


def neg(a: Any) -> Any:
    if _tensor(a):
        return -a
    a = as_gene_number(a)  # a NumPy scalar negated exactly: an int one overflows as Gene's do
    if not _is_num(a):
        raise GeneTypeError(f"- expects a number, got {kind_name(a)}")
    return check_int(-a, "-")


def div(a: Any, b: Any) -> float:
    """Gene `/`: always a float; division by zero gives inf, -inf or nan."""
    if _tensor(a, b):
        return a / b  # type: ignore[no-any-return]
    a, b = _nums("/", a, b)
    if b == 0:
        if a == 0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    if type(a) is int and type(b) is int:
        return a / b
    return float(a) / float(b)


def power(a: Any, b: Any) -> Any:
    """`(a ** b)`: an int for ints with b >= 0 (overflow is an error), else IEEE pow."""
    a, b = _nums("**", a, b)
    if type(a) is int and type(b) is int and b >= 0:
        if abs(a) > 1 and b > 64:  # certain overflow; don't build a huge int first
            raise GeneOverflowError(f"integer overflow in **: {a} to the power {b}")
        return check_int(a**b, "**")
    return ieee_pow(float(a), float(b))


def ieee_pow(x: float, y: float) -> float:
    """C's pow (IEEE 754, as native code computes it): `(pow 0.0 -1.0)` is inf,
    `(pow -10.0 401.0)` is -inf, a negative base to a fractional power nan. Python's
    math.pow raises in exactly those cases; libm's own answer is taken there."""
    try:
        return math.pow(x, y)
    except (ValueError, OverflowError):
        return float(_libm_pow()(x, y))


@functools.cache
def _libm_pow() -> Callable[[float, float], float]:
    import ctypes
    import ctypes.util

    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    fn = libm.pow
    fn.restype = ctypes.c_double
    fn.argtypes = [ctypes.c_double, ctypes.c_double]
    return fn  # type: ignore[no-any-return]


def int_div(a: Any, b: Any) -> Any:
    """`(div a b)`: integer division rounding toward negative infinity."""
    a, b = _nums("div", a, b)
    if b == 0:
        raise GeneError("division by zero in div")
    return check_int(a // b, "div")


def mod(a: Any, b: Any) -> Any:
    """`(mod a b)`: the remainder with the sign of `b`."""
    a, b = _nums("mod", a, b)
    if b == 0:
        raise GeneError("division by zero in mod")
    return a % b


def rem(a: Any, b: Any) -> Any:
    """`(rem a b)`: the remainder with the sign of `a`."""
    a, b = _nums("rem", a, b)
    if b == 0:
        raise GeneError("division by zero in rem")
    if type(a) is int and type(b) is int:
        r = abs(a) % abs(b)
        return -r if a < 0 else r
    return math.fmod(a, b)


def _cmp_check(op: str, a: Any, b: Any) -> None:
    if not (_is_num(a) and _is_num(b)) and not (_is_real(a) and _is_real(b)):
        raise GeneTypeError(f"{op} compares numbers only, got {kind_name(a)} and {kind_name(b)}")


def _is_real(v: Any) -> bool:
    """A number of another class (a NumPy scalar): ordered by value, as `==` compares it."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def lt(a: Any, b: Any) -> bool:
    _cmp_check("<", a, b)
    return bool(a < b)


def le(a: Any, b: Any) -> bool:
    _cmp_check("<=", a, b)
    return bool(a <= b)


def gt(a: Any, b: Any) -> bool:
    _cmp_check(">", a, b)
    return bool(a > b)


def ge(a: Any, b: Any) -> bool:
    _cmp_check(">=", a, b)
    return bool(a >= b)


def eq(a: Any, b: Any) -> bool:
    """Structural equality with matching kinds (`1 == 1.0` is false)."""
    from gene_jit.runtime.equality import gene_equal

    return gene_equal(a, b)


def ne(a: Any, b: Any) -> bool:
    return not eq(a, b)


def truthy(v: Any) -> bool:
    return v is not None and v is not False


def not_(v: Any) -> bool:
    return v is None or v is False


# ---------------------------------------------------------------- strings and data


def display(v: Any) -> str:
    if type(v) is str:
        return v
    from gene_jit.runtime.printer import display as _display

    return _display(v)


def interp(*parts: Any) -> str:
    """`#"a#{x}b"` and `("a" x)`: concatenated display forms, nil as ""."""
    return "".join(p if type(p) is str else ("" if p is None else display(p)) for p in parts)


def make_range(a: Any, b: Any) -> Range:
    """`(a .. b)`, of numbers as `range` takes (checked here, not at a later `+`)."""
    for v in (a, b):
        if type(v) not in (int, float) and (isinstance(v, bool) or not isinstance(v, numbers.Real)):
            raise GeneTypeError(f"(a .. b) expects numbers, got {kind_name(a)} and {kind_name(b)}")
    return Range(a, b, 1, True)


def make_gene(type_: Any, props: dict[str, Any], children: list[Any]) -> Gene:
    return Gene(type_, props, children)


def spread(v: Any) -> Iterable[Any]:
    """What `xs...` splices: array elements, gene children, range or set items."""
    if type(v) is list:
        return v
    if isinstance(v, Gene):
        return v.children
    if isinstance(v, GeneSet):
        return v.items
    if isinstance(v, (Range, tuple)):
        return list(v)
    if isinstance(v, dict):
        return list(v.values())
    if v is None:
        return ()
    if _is_ndarray(v):
        return list(array_values(v))
    raise GeneTypeError(f"cannot spread {a_kind(v)}")


def iter_values(v: Any) -> Iterable[Any]:
    """What `(for x in v)` visits."""
    if type(v) is list or type(v) is Range or type(v) is str:
        return v
    if isinstance(v, dict):
        return list(v.values())
    if isinstance(v, Gene):
        return v.children
    if isinstance(v, GeneSet):
        return v.items
    if isinstance(v, (list, tuple, range)):
        return v
    if v is None:
        return ()
    if _is_ndarray(v):
        return array_values(v)
    if hasattr(v, "__iter__"):
        return v  # type: ignore[no-any-return]
    raise GeneTypeError(f"cannot iterate over {a_kind(v)}")


def iter_pairs(v: Any) -> Iterable[tuple[Any, Any]]:
    """What `(for [k v] in m)` visits: key/value for maps, index/value otherwise."""
    if isinstance(v, dict):
        return list(v.items())
    if isinstance(v, Gene):
        return list(v.props.items()) + list(enumerate(v.children))
    return enumerate(iter_values(v))


# ---------------------------------------------------------------- member access


def get_member(obj: Any, key: Any, builtin_ns: str | None = None) -> Any:
    """`obj/key`: map key (nil if missing), array/gene child by index, namespace, class
    or enum member, instance prop, gene prop, NumPy array element or row.

    `builtin_ns` is given for a complex symbol whose head also names a builtin namespace
    (`model/forward` after `(var model (model/create ...))`): when `obj` is some other
    value without member `key`, the builtin namespace's member is the answer. It is only
    consulted where the lookup would otherwise fail, so the common paths pay nothing.
    """
    t = type(obj)
    if t is dict:
        return obj.get(key) if type(key) is str else None
    if t is list or t is str:
        if type(key) is int:
            if 0 <= key < len(obj):
                return obj[key]
            return None
        raise GeneTypeError(f"cannot index {a_kind(obj)} with {kind_name(key)} {key!s}")
    if t is Instance:
        if key in obj.props:
            return obj.props[key]
        return obj.cls.members.get(key) if type(key) is str else None
    if t is Namespace:
        val = obj.get(key, _MISSING)
        if val is _MISSING:
            raise GeneNameError(f"{obj.full_name()}/{key} is not defined")
        return val
    if t is Gene:
        if type(key) is int:
            return obj.children[key] if 0 <= key < len(obj.children) else None
        return obj.props.get(key)
    if t is GeneClass:
        val = _class_member(obj, key)
        if val is _MISSING:
            raise GeneNameError(f"{obj.name}/{key} is not defined")
        return val
    if t is GeneEnum:
        m = obj.members.get(key)
        if m is None:
            raise GeneNameError(f"{obj.name}/{key} is not defined")
        return m
    if t is ModuleType and type(key) is str:  # `np/linalg/norm`: one frame, as in Python
        try:
            return getattr(obj, key)
        except AttributeError:
            pass
    return _other_member(obj, key, builtin_ns)


def _other_member(obj: Any, key: Any, builtin_ns: str | None) -> Any:
    """`obj/key` for values other than Gene data: enum members, NumPy arrays, library
    objects with `__gene_get__`, then the builtin-namespace fallback."""
    if type(obj) is ModuleType and type(key) is str:  # `-` for `_`, submodules, the error
        return python_member(obj, key)
    if type(obj) is EnumMember:
        if key == "name":
            return obj.name
        if key == "value":
            return obj.value
    elif _is_ndarray(obj):
        if type(key) is str:  # `a/shape`, `a/T`: a NumPy array is a Python object too
            return python_member(obj, key)
        return array_get(obj, key)
    elif type(key) is int and getattr(type(obj), "__gene_tensor__", False):
        return obj.__gene_get__(key)  # `t/0`, `(t ./ 0)`: as (tensor/get t 0)
    if type(key) is str and hasattr(type(obj), "__gene_get__"):
        if builtin_ns is None:
            return obj.__gene_get__(key)
        try:
            return obj.__gene_get__(key)
        except GeneError:
            val = _builtin_member(builtin_ns, key)
            if val is _MISSING:
                raise
            return val
    if type(key) is int and isinstance(obj, (tuple, list)):
        return obj[key] if 0 <= key < len(obj) else None
    if builtin_ns is not None:
        val = _builtin_member(builtin_ns, key)
        if val is not _MISSING:
            return val
    if obj is None:
        raise GeneTypeError(f"cannot get member {key} of nil")
    named = _function_name(obj)
    if named is not None:  # a Python function underneath, but not a Python library's value
        raise GeneTypeError(f"{named} is a function; it has no member {key}")
    if is_python_object(obj):  # a value of a Python library (gene_jit/py)
        return python_member(obj, key)
    raise GeneTypeError(f"cannot get member {key} of {a_kind(obj)}")


def _function_name(obj: Any) -> str | None:
    """The Gene name of a Gene function or a builtin (`str`, `model/create`), else None."""
    if isinstance(obj, LazyBuiltin):
        return obj.gene_name
    if callable(obj) and not isinstance(obj, type):
        for attr in ("__gene_name__", "__gene_builtin__"):
            name = getattr(obj, attr, None)
            if isinstance(name, str):
                return name or "this function"
    return None


def _builtin_member(ns_name: str, key: Any) -> Any:
    ns = BUILTINS.get(ns_name)
    if type(ns) is not Namespace or type(key) is not str:
        return _MISSING
    return ns.get(key, _MISSING)


_MISSING = object()


def _class_member(cls: GeneClass, key: Any) -> Any:
    c: GeneClass | None = cls
    while c is not None:
        if key in c.members:
            return c.members[key]
        if key in c.methods:
            return c.methods[key]
        c = c.parent
    if key == "name":
        return cls.name
    if key == "parent":
        return cls.parent
    return _MISSING


def get_path(obj: Any, keys: tuple[Any, ...]) -> Any:
    for key in keys:
        obj = get_member(obj, key)
    return obj


def select(obj: Any, key: Any, default: Any = None) -> Any:
    """`(./ obj key default)`: like `obj/key`, but a default instead of any failure."""
    if type(obj) is dict:
        return obj.get(key, default) if type(key) is str else default
    if isinstance(obj, Mapping) and is_python_object(obj):  # os.environ, a Counter
        return python_select(obj, key, default)
    try:
        val = get_member(obj, key)
    except GeneError:
        return default
    return default if val is None else val


def set_member(obj: Any, key: Any, value: Any) -> Any:
    """`(obj/key = v)` and `($set obj @key v)`; returns `value`."""
    t = type(obj)
    if t is dict:
        if type(key) is not str:
            key = key.name if isinstance(key, Symbol) else display(key)
        obj[key] = value
    elif t is list:
        if type(key) is not int:
            raise GeneTypeError(f"an array index must be an int, got {kind_name(key)}")
        if not 0 <= key < len(obj):
            raise GeneIndexError(f"index {key} out of range for an array of {len(obj)}")
        obj[key] = value
    elif t is Instance:
        obj.props[key] = value
    elif t is Namespace:
        obj.members[key] = value
        if " proven flags" in obj.members:  # a module's globals (frontend/proofs.py)
            from gene_jit.frontend.proofs import unprove

            unprove(obj.members, key)
    elif t is Gene:
        if type(key) is int:
            obj.children[key] = value
        else:
            obj.props[key] = value
    elif t is GeneClass:
        obj.members[key] = value
    elif _is_ndarray(obj):
        return array_set(obj, key, value)
    elif is_python_object(obj):  # `(proto/ir_version = 8)`: a Python attribute or item
        python_set(obj, key, value)
    elif type(key) is str and hasattr(t, "__gene_set__"):  # `(p/x = 1)` on an ffi struct
        obj.__gene_set__(key, value)
    else:
        raise GeneTypeError(f"cannot set member {key} of {a_kind(obj)}")
    return value


class Selector:
    """`(@ "k")`, `@k`, `@0`: a callable that selects a member."""

    __slots__ = ("keys",)

    def __init__(self, *keys: Any) -> None:
        self.keys = keys

    def __call__(self, obj: Any, default: Any = None) -> Any:
        for key in self.keys:
            obj = select(obj, key)
        return default if obj is None else obj

    def __repr__(self) -> str:
        return "(@ " + " ".join(map(str, self.keys)) + ")"


def set_selected(obj: Any, sel: Any, value: Any) -> Any:
    if not isinstance(sel, Selector):
        return set_member(obj, sel, value)
    for key in sel.keys[:-1]:
        obj = get_member(obj, key)
    return set_member(obj, sel.keys[-1], value)


# ---------------------------------------------------------------- methods

# Methods of non-instance values: METHODS[python type][gene name] = fn(receiver, *args).
METHODS: dict[type, dict[str, Callable[..., Any]]] = {}


def method(
    types: type | tuple[type, ...], *names: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `fn(receiver, *args)` as method `names` of values of `types`."""
    tys = types if isinstance(types, tuple) else (types,)

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        for ty in tys:
            table = METHODS.setdefault(ty, {})
            for name in names:
                table[name] = fn
        return fn

    return register


def find_method(obj: Any, name: str) -> Callable[..., Any] | None:
    table = METHODS.get(type(obj))
    if table is not None:
        fn = table.get(name)
        if fn is None and "-" in name:
            fn = table.get(name.replace("-", "_"))
        if fn is not None:
            return fn
    table = METHODS.get(object)
    return table.get(name) if table is not None else None


def gene_kwargs(fn: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The props a callee accepts: a Gene function drops those it does not declare."""
    declared = getattr(fn, "__gene_kwonly__", None)
    if declared is None or not kwargs:
        return kwargs
    return {k: v for k, v in kwargs.items() if k in declared}


def call_props(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A call with props `(f a ^k v)`."""
    return fn(*args, **gene_kwargs(fn, kwargs))


def instance_method(obj: Any, name: str) -> Any:
    """The method `(obj .name args...)` runs where `obj` is an instance whose class has
    one, else None. Generated code calls it itself, without `call_method` between: a
    Gene method call is then one Python frame, as a function call is, and both count
    alike against the Gene call depth limit. It calls no Python function itself (the
    class chain is walked here), so that looking the method up needs no more stack
    than calling it."""
    if type(obj) is not Instance:
        return None
    cls: GeneClass | None = obj.cls
    while cls is not None:
        m = cls.methods.get(name)
        if m is not None:
            return m
        cls = cls.parent
    return None


def call_method(obj: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """`(obj .name args...)`."""
    if type(obj) is Instance:
        m = obj.cls.find_method(name)
        if m is not None:
            return m(obj, *args, **gene_kwargs(m, kwargs))
    elif type(obj) is GeneClass:
        m = obj.find_method(name) if name != "new" else None
        if name == "new":
            return obj(*args, **kwargs)
        if m is not None:
            return m(obj, *args, **kwargs)
    fn = find_method(obj, name)
    if fn is not None:
        return fn(obj, *args, **kwargs)
    bound = getattr(obj, "__gene_method__", None)
    if bound is not None:
        return bound(name, *args, **kwargs)
    if type(obj) is Namespace:
        member = obj.get(name)
        if callable(member):
            return member(*args, **kwargs)
    if is_python_object(obj):
        return python_method(obj, name, args, kwargs)
    err = GeneTypeError(f"{a_kind(obj)} has no method .{name}")
    if type(obj) in (list, dict) and hasattr(type(obj), name):  # `(sys/path .insert 0 ".")`
        err.add_context(f"a Python {type(obj).__name__} is a Gene {kind_name(obj)}; "
                        f"((py/get x \"{name}\") args...) calls its Python method")
    raise err


def super_call(cls: GeneClass, name: str, self_: Any, *args: Any, **kwargs: Any) -> Any:
    """`(super args)` inside method `name` of class `cls`: the parent's method."""
    parent = cls.parent
    m = parent.find_method(name) if parent is not None else None
    if m is None:
        if name == "ctor":
            return None
        raise GeneTypeError(f"no parent method .{name} for class {cls.name}")
    return m(self_, *args, **gene_kwargs(m, kwargs))


def new(cls: Any, *args: Any, **kwargs: Any) -> Any:
    """`(new A args...)`."""
    if isinstance(cls, GeneClass):
        return cls(*args, **kwargs)
    # a Python class through the bridge, or a builtin that stands for one (gene/Future);
    # a function is no class
    if isinstance(cls, type) or getattr(cls, "__gene_constructor__", False):
        return cls(*args, **kwargs)
    raise GeneTypeError(f"new expects a class, got {kind_name(cls)}")


def make_class(name: str, parent: Any) -> GeneClass:
    if parent is not None and not isinstance(parent, GeneClass):
        raise GeneTypeError(f"class {name} < expects a class, got {kind_name(parent)}")
    return GeneClass(name, parent)


def is_a(obj: Any, cls: Any) -> bool:
    """`(x .is A)` and typed `catch`."""
    if isinstance(cls, GeneClass):
        return type(obj) is Instance and obj.cls.is_subclass(cls)
    if isinstance(cls, type):
        return isinstance(obj, cls)
    return False


def make_enum(name: str, entries: list[tuple[str, Any]]) -> GeneEnum:
    enum = GeneEnum(name)
    value = 0
    for member, explicit in entries:
        if explicit is not None:
            if type(explicit) is not int:
                raise GeneTypeError(f"enum {name}: value of {member} must be an int")
            value = explicit
        enum.members[member] = EnumMember(enum, member, value)
        value += 1
    return enum


# ---------------------------------------------------------------- calls


def call_kw_tail(
    fn: Any, args: list[Any], tail: list[tuple[str, Any]], props: dict[str, Any]
) -> Any:
    """A call ending in seed-style `:kw value` pairs: keyword arguments for native
    callees and for Gene functions that declare `^kw`; positional otherwise."""
    declared = getattr(fn, "__gene_kwonly__", None)
    if declared is None:
        declared = _accepted_keywords(fn)
    if declared is True or all(k in declared or k.replace("-", "_") in declared for k, _ in tail):
        kwargs = dict(props)
        for k, v in tail:
            kwargs[k.replace("-", "_")] = v
        return fn(*args, **kwargs)
    extra: list[Any] = []
    for k, v in tail:
        extra.append(Symbol(k))
        extra.append(v)
    return fn(*args, *extra, **props)


_KW_CACHE: dict[int, tuple[Any, Any]] = {}


def _accepted_keywords(fn: Any) -> Any:
    """The keyword names a native callable accepts (True if it takes **kwargs)."""
    hit = _KW_CACHE.get(id(fn))
    if hit is not None and hit[0] is fn:
        return hit[1]
    import inspect

    target = fn.resolve() if hasattr(fn, "resolve") and hasattr(fn, "gene_name") else fn
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        result: Any = True
    else:
        if any(p.kind is p.VAR_KEYWORD for p in params):
            result = True
        else:
            result = frozenset(
                p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
            )
    _KW_CACHE[id(fn)] = (fn, result)
    return result


def quote_symbol(name: str) -> Symbol:
    return Symbol(name)


PLACEHOLDER_VALUE = PLACEHOLDER


class Macro:
    """A Gene macro (fexpr): called with unevaluated argument values and the caller's
    environment; its result is returned as-is."""

    __slots__ = ("fn", "name", "__weakref__")

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.fn = fn
        self.name = name

    def __repr__(self) -> str:
        return f"(macro {self.name})"


class CallerEnv:
    """What `eval` and `$caller_eval` need: the caller's globals and visible locals, and
    the span of the `eval` form or macro call (evaluated code is reported there)."""

    __slots__ = ("globals", "locals", "span")

    def __init__(
        self, globals_: dict[str, Any], locals_: dict[str, Any], span: Span | None = None
    ) -> None:
        self.globals = globals_
        self.locals = locals_
        self.span = span


# `(throw)`, `catch` and `case` (gene_jit/runtime/ops_throw.py), under the names compiled
# code looks up here
from gene_jit.runtime.ops_throw import (  # noqa: E402,F401
    case_matches,
    catch_matches,
    ex_value,
    make_throw,
)
