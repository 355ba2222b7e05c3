"""The C backend's calls through ctypes, cheaply: the addresses of arrays that live across runs (lookup tables,
output slots, packed constants, data series) taken once, not per call. ``ndarray.ctypes.data`` costs 1-2 µs
(it builds a ctypes object), and a run passes about twenty arrays: tens of microseconds per run on the
reference model, whose kernel takes about ten (measured 30 Nov, docs/architecture.md "One run's overhead")."""
from __future__ import annotations

import ctypes

import numpy as np

_KEEP_MAX = 256           # addresses remembered (with their arrays, so that no other array takes the id)
_KEEP_ELEMENTS = 100_000  # only small arrays: a remembered array stays in memory until the cache is cleared
_kept: dict[int, tuple[np.ndarray, int]] = {}
_data_kept: dict[int, tuple[list, tuple[int, int, int, int, int], tuple]] = {}


def address(a: np.ndarray) -> int:
    """The address of a C-contiguous array that the caller keeps across runs (remembered while it lives here)."""
    got = _kept.get(id(a))
    if got is not None and got[0] is a:
        return got[1]
    if not a.flags.c_contiguous:
        raise ValueError("the C backend passes C-contiguous arrays only")
    p = a.ctypes.data
    if a.size <= _KEEP_ELEMENTS:
        if len(_kept) >= _KEEP_MAX:
            _kept.clear()
        _kept[id(a)] = (a, p)
    return p


def data_args(data: list[tuple[np.ndarray, np.ndarray]]) -> tuple[tuple[int, int, int, int, int], tuple]:
    """(DT, NT, DV, NE, NB) as the kernels' LX_DATA reads them: the data series' times and values as arrays of
    pointers, their lengths, elements and columns (remembered per list: ScalarProgram._data keeps its list
    while the inputs are the same), and the buffers behind them: the caller holds these during its call."""
    if not data:
        return _NO_DATA
    got = _data_kept.get(id(data))
    if got is not None and got[0] is data:
        return got[1], got[2]
    k = max(len(data), 1)
    DT = (ctypes.c_void_p * k)(*[t.ctypes.data for t, _ in data])
    DV = (ctypes.c_void_p * k)(*[v.ctypes.data for _, v in data])
    NT, NE, NB = (np.asarray(x or [0], dtype=np.int64) for x in
                  ([v.shape[0] for _, v in data], [v.shape[1] for _, v in data], [v.shape[2] for _, v in data]))
    args = (ctypes.addressof(DT), NT.ctypes.data, ctypes.addressof(DV), NE.ctypes.data, NB.ctypes.data)
    if len(_data_kept) >= 16:
        _data_kept.clear()
    keep = (DT, DV, NT, NE, NB)
    _data_kept[id(data)] = (data, args, keep)
    return args, keep


def _no_data() -> tuple[tuple[int, int, int, int, int], tuple]:
    zero = np.zeros(1, dtype=np.int64)
    ptrs = (ctypes.c_void_p * 1)()
    return (ctypes.addressof(ptrs), zero.ctypes.data, ctypes.addressof(ptrs), zero.ctypes.data, zero.ctypes.data), \
        (ptrs, zero)


_NO_DATA = _no_data()   # a model without data series: the same (unread) arguments every call


class Words:
    """A kept argument block: one 8-byte word per argument (an int64, a double or an address), for a C function
    that takes a pointer to it (``lx_run``). Built once per set of arrays and numbers; each call then passes one
    address, where a call of thirty ctypes arguments costs about ten microseconds of conversions (measured,
    docs/architecture.md "One run's overhead, third pass"). Holds the arrays it points into."""

    def __init__(self, kinds: tuple[tuple[str, str], ...], values: dict[str, object]) -> None:
        self.block = np.zeros(len(kinds), dtype=np.int64)
        as_float = self.block.view(np.float64)
        held: list[object] = []
        for k, (name, kind) in enumerate(kinds):
            v = values[name]
            if kind == "i":
                self.block[k] = int(v)   # type: ignore[call-overload]
            elif kind == "d":
                as_float[k] = float(v)   # type: ignore[arg-type]
            elif isinstance(v, np.ndarray):
                if not v.flags.c_contiguous:
                    raise ValueError(f"the C backend passes C-contiguous arrays only ({name})")
                self.block[k] = v.ctypes.data
                held.append(v)
            else:                        # an address (of a buffer the caller holds in ``keep``)
                self.block[k] = int(v)   # type: ignore[call-overload]
        self.held = held
        self.address = self.block.ctypes.data
