import ctypes, time, sys
sys.path.insert(0, ".")
from gene_jit import ffi
from gene_jit.ffi.types import MISSING as _M
g = ffi.defun("labs", lib="c", returns="long", params=["long"])
cf = ffi.foreign_info(g).cfunc
_pend = []
def w(a0):
    return cf(a0)
def w2(a0=_M, *_va):
    return cf(a0)
def w2b(a0=_M):
    return cf(a0)
def w3(a0):
    c0 = a0 if type(a0) is int else None
    return cf(c0)
def w4(a0):
    try:
        r = cf(a0)
    except ctypes.ArgumentError:
        raise
    if _pend: pass
    return r
def loop(f, n):
    for i in range(n): f(i)
fs = dict(cf=cf, w=w, w2=w2, w2b=w2b, w3=w3, w4=w4, g=g)
res = {k: 1e9 for k in fs}
for r in range(15):
    for k, f in fs.items():
        t=time.perf_counter_ns(); loop(f, 200000); res[k]=min(res[k], (time.perf_counter_ns()-t)/200000)
print({k: round(v) for k, v in res.items()})
import inspect
