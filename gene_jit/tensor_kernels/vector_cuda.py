"""Wide loads and cheap launches for the CUDA kernels.

`ld8(a, i)` reads eight consecutive elements `a[i:i+8]` of a flat f16 or f32 device array
as one aligned vector load (16 bytes for f16, 32 for f32), marked read-only so it goes
through the non-coherent cache path (`ld.global.nc.v4`), and widens f16 to f32 with the
hardware converter. `ld_cg4` / `ld_cg2` read f32 data that other blocks of the same
kernel wrote (L2-coherent loads). Bandwidth-bound kernels need such loads: 2-byte scalar loads can not
keep enough bytes in flight to saturate HBM. Callers guarantee 16-byte alignment of the
element at `i` (launchers check the base pointer and pick offsets that are multiples of
8 elements).

`ld4(a, i)` / `st4(a, i, x0, x1, x2, x3)` read and write four consecutive f32 elements of a
flat array as one 16-byte access (`ld.global.v4.f32` / `st.global.v4.f32`, ordinary
coherent accesses, so in-place kernels may read and write the same buffer); `i` is a
multiple of 4 and the array starts on a 16-byte boundary. A warp of such accesses moves
512 contiguous bytes with one instruction, a quarter of the issue slots of scalar ones.

`Launcher` launches a kernel through its compiled specialisation, skipping the
dispatcher's per-call argument typing; under Numba's simulator it is a plain launch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gene_jit.tensor_kernels.cuda_support import cuda, simulator

cu = cuda()

if simulator():

    @cu.jit(device=True)
    def ld8(a: Any, i: int) -> tuple[Any, ...]:
        v = np.asarray(a[i:i + 8], dtype=np.float32)
        return (v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7])

else:
    from llvmlite import ir
    from numba import types
    from numba.cuda.extending import intrinsic

    @intrinsic
    def ld8(typingctx: Any, a: Any, i: Any) -> Any:  # noqa: ARG001 (Numba's intrinsic protocol)
        if not (isinstance(a, types.Array) and a.ndim == 1 and a.dtype in (types.float16, types.float32)
                and isinstance(i, types.Integer)):
            return None
        sig = types.UniTuple(types.float32, 8)(a, i)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            aty = sig.args[0]
            arr = context.make_array(aty)(context, builder, args[0])
            idx = context.cast(builder, args[1], sig.args[1], types.intp)
            ptr = builder.gep(arr.data, [idx])
            if aty.dtype == types.float16:
                vals = _ld8_f16(builder, ptr)
            else:
                vty = ir.VectorType(ir.FloatType(), 8)
                # Device arrays live in global memory: say so, so the load is ld.global.
                gptr = builder.addrspacecast(builder.bitcast(ptr, vty.as_pointer()), ir.PointerType(vty, 1))
                vec = builder.load(gptr, align=16)
                vec.set_metadata("invariant.load", builder.module.add_metadata([]))
                vals = [builder.extract_element(vec, ir.Constant(ir.IntType(32), e)) for e in range(8)]
            return context.make_tuple(builder, sig.return_type, vals)

        return sig, codegen

    def _ld8_f16(builder: Any, ptr: Any) -> list[Any]:
        """Eight halves at `ptr` -> eight f32 values. The load is inline PTX: given an
        LLVM vector load, NVVM folds the i32 -> half reinterpretation back into the load
        and splits it into 2-byte pieces."""
        i32, i16 = ir.IntType(32), ir.IntType(16)
        fnty = ir.FunctionType(ir.LiteralStructType([i32] * 4), [ir.IntType(64)])
        asm = ir.InlineAsm(fnty, "ld.global.nc.v4.u32 {$0, $1, $2, $3}, [$4];", "=r,=r,=r,=r,l")
        words = builder.call(asm, [builder.ptrtoint(ptr, ir.IntType(64))])
        vals = []
        for e in range(4):
            word = builder.extract_value(words, e)
            for part in (word, builder.lshr(word, ir.Constant(i32, 16))):
                h = builder.bitcast(builder.trunc(part, i16), ir.HalfType())
                vals.append(builder.fpext(h, ir.FloatType()))
        return vals


if simulator():

    @cu.jit(device=True)
    def ld_cg4(a: Any, i: int) -> tuple[Any, ...]:
        f = a.reshape(a.size)
        return (f[i], f[i + 1], f[i + 2], f[i + 3])

    @cu.jit(device=True)
    def ld_cg2(a: Any, i: int) -> tuple[Any, ...]:
        f = a.reshape(a.size)
        return (f[i], f[i + 1])

else:

    def _make_ld_cg(width: int) -> Any:
        """`ld_cg<width>(a, i)`: elements i..i+width-1 of a C-contiguous f32 array of any
        rank (`i` a flat index), one `ld.global.cg`
        vector load (cached in L2 only). For data other blocks of the same kernel wrote:
        L1 is not coherent across SMs, L2 is. The asm is marked as having side effects so
        that LLVM keeps it after the fence and atomic that order it."""

        @intrinsic
        def ld_cg(typingctx: Any, a: Any, i: Any) -> Any:  # noqa: ARG001 (Numba's intrinsic protocol)
            if not (isinstance(a, types.Array) and a.layout == "C" and a.dtype == types.float32
                    and isinstance(i, types.Integer)):
                return None
            sig = types.UniTuple(types.float32, width)(a, i)

            def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
                arr = context.make_array(sig.args[0])(context, builder, args[0])
                idx = context.cast(builder, args[1], sig.args[1], types.intp)
                ptr = builder.ptrtoint(builder.gep(arr.data, [idx]), ir.IntType(64))
                f32 = ir.FloatType()
                regs = ", ".join(f"${e}" for e in range(width))
                fnty = ir.FunctionType(ir.LiteralStructType([f32] * width), [ir.IntType(64)])
                asm = ir.InlineAsm(fnty, f"ld.global.cg.v{width}.f32 {{{regs}}}, [${width}];",
                                   ",".join(["=f"] * width + ["l"]), side_effect=True)
                res = builder.call(asm, [ptr])
                vals = [builder.extract_value(res, e) for e in range(width)]
                return context.make_tuple(builder, sig.return_type, vals)

            return sig, codegen

        return ld_cg

    ld_cg4 = _make_ld_cg(4)
    ld_cg2 = _make_ld_cg(2)


if simulator():

    @cu.jit(device=True)
    def ld4(a: Any, i: int) -> tuple[Any, ...]:
        return (a[i], a[i + 1], a[i + 2], a[i + 3])

    @cu.jit(device=True)
    def st4(a: Any, i: int, x0: Any, x1: Any, x2: Any, x3: Any) -> None:
        a[i] = x0
        a[i + 1] = x1
        a[i + 2] = x2
        a[i + 3] = x3

else:

    def _f32x4_ptr(context: Any, builder: Any, aty: Any, arr: Any, idx: Any, ity: Any) -> Any:
        """The `<4 x float>` global-memory pointer to element `idx` of a flat f32 array."""
        a = context.make_array(aty)(context, builder, arr)
        ptr = builder.gep(a.data, [context.cast(builder, idx, ity, types.intp)])
        vty = ir.VectorType(ir.FloatType(), 4)
        return builder.addrspacecast(builder.bitcast(ptr, vty.as_pointer()), ir.PointerType(vty, 1))

    def _flat_f32(a: Any) -> bool:
        return isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.float32

    @intrinsic
    def ld4(typingctx: Any, a: Any, i: Any) -> Any:  # noqa: ARG001 (Numba's intrinsic protocol)
        if not (_flat_f32(a) and isinstance(i, types.Integer)):
            return None
        sig = types.UniTuple(types.float32, 4)(a, i)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            vec = builder.load(_f32x4_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), align=16)
            vals = [builder.extract_element(vec, ir.Constant(ir.IntType(32), e)) for e in range(4)]
            return context.make_tuple(builder, sig.return_type, vals)

        return sig, codegen

    @intrinsic
    def st4(typingctx: Any, a: Any, i: Any, x0: Any, x1: Any, x2: Any, x3: Any) -> Any:  # noqa: ARG001
        if not (_flat_f32(a) and isinstance(i, types.Integer)
                and all(x == types.float32 for x in (x0, x1, x2, x3))):
            return None
        sig = types.none(a, i, x0, x1, x2, x3)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            vec = ir.Constant(ir.VectorType(ir.FloatType(), 4), None)
            for e in range(4):
                vec = builder.insert_element(vec, args[2 + e], ir.Constant(ir.IntType(32), e))
            builder.store(vec, _f32x4_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), align=16)
            return context.get_dummy_value()

        return sig, codegen


def aligned(a: Any, elements: int = 8) -> bool:
    """True when a device array's data starts on a 16-byte boundary and is C-contiguous;
    with `elements` (a row length), also when every row starts on one."""
    if simulator():
        ok = a.flags["C_CONTIGUOUS"] if hasattr(a, "flags") else True
        return bool(ok) and elements % 8 == 0
    ptr = a.__cuda_array_interface__["data"][0]
    return bool(a.is_c_contiguous()) and ptr % 16 == 0 and elements % 8 == 0


class Launcher:
    """Launch one kernel with fixed argument types through its compiled specialisation.

    `types` are Numba types of the arguments; the first launch compiles. The dispatcher's
    own `kernel[grid, block](...)` path types every argument on every call, which costs
    tens of microseconds: more than a decode-step kernel runs."""

    def __init__(self, kernel: Any, argtypes: tuple[Any, ...]) -> None:
        self.kernel = kernel
        self.argtypes = argtypes
        self._compiled: Any = None
        self._stream: Any = None

    def __call__(self, grid: Any, block: Any, *args: Any) -> None:
        if simulator():
            self.kernel[grid, block](*args)
            return
        self.compiled().launch(args, _dim3(grid), _dim3(block), self._stream)

    def compiled(self) -> Any:
        """The compiled kernel (compiling it on first use); real GPU only."""
        if self._compiled is None:
            from numba.cuda.cudadrv import driver

            self._compiled = self.kernel.compile(self.argtypes)
            self._stream = driver._to_core_stream(0)  # type: ignore[attr-defined] # the default stream, as kernel[g, b] uses
        return self._compiled


def _dim3(dim: Any) -> tuple[int, int, int]:
    if isinstance(dim, int):
        return (dim, 1, 1)
    return (tuple(dim) + (1, 1))[:3]  # type: ignore[return-value]


def array_type(dtype: Any, ndim: int = 1, layout: str = "C") -> Any:
    """The Numba type of a device array (for `Launcher` signatures)."""
    from numba import types
    from numba.cuda.np.numpy_support import from_dtype

    return types.Array(from_dtype(np.dtype(dtype)), ndim, layout)  # type: ignore[call-overload]
