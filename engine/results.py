"""Results of a batch run: arrays per variable, a status per run, a tidy DataFrame, CSV and Parquet writers."""
from __future__ import annotations

import enum
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import EngineError


class RunStatus(enum.IntEnum):
    """Outcome of one run of a batch (as diffrax's ``RESULTS``): 0 is success, anything else a failure.

    A failed run's saved values stop at the failure: NaN from the failure time on.
    """

    SUCCESS = 0
    NON_FINITE = 1       # a variable's value became NaN or infinite (division by zero, LN of 0, overflow)
    STOCK_OVERFLOW = 2   # a stock became infinite: its net flow overflowed
    GUARD = 3            # a check inside the run stopped it (a builtin's rule, a numpy error, the adaptive solver)
    NEGATIVE_STOCK = 4   # a non-negative stock starts below zero (it is clipped at 0 only after it has started)


@dataclass(frozen=True)
class RunFailure:
    """Why one run of a batch stopped: the run's index and scenario label, the variable, the time
    (model time units) and the cause, in words."""

    run: int
    label: str
    variable: str
    time: float
    cause: str
    status: RunStatus = RunStatus.NON_FINITE

    def message(self) -> str:
        return f"run {self.label!r} (#{self.run}): {self.variable}: {self.cause} at time {self.time:g}"


class SavedArrays(Mapping):
    """The saved values of a compiled batch, {name: (T, *dims, N)}, as views of the kernel's one output array
    (T, columns, N), made on first use: a run that saves ten variables builds no ten arrays before anyone reads
    them (about 1 µs each; one run of a small model is tens of µs). ``columns`` maps each name to its columns
    (first, past the last) and its dimensions' sizes, in saving order (shared, never changed)."""

    def __init__(self, out: np.ndarray, columns: dict[str, tuple[int, int, tuple[int, ...]]]) -> None:
        self._out = out
        self._columns = columns
        self._views: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        got = self._views.get(name)
        if got is None:
            a, b, shape = self._columns[name]
            out = self._out
            got = self._views[name] = out[:, a:b, :].reshape((out.shape[0], *shape, out.shape[2]))
        return got

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __reduce__(self):
        # pickled as the one output array and its columns (the views would be pickled as copies)
        return (SavedArrays, (self._out, self._columns))


class Results:
    """Saved values of one batch run.

    ``res[name]`` is an array of shape (N, T) or (N, T, *dims); ``to_dataframe()``
    gives one row per (scenario, time) and one column per variable element, with
    subscripted variables flattened as ``name[element]`` (``name[e1,e2]`` for two dims).
    """

    def __init__(self, scenarios: list[str], times: np.ndarray, data: Mapping[str, np.ndarray],
                 elements: dict[str, list[tuple[str, ...]]], units: dict[str, str | None],
                 dims: dict[str, tuple[str, ...]] | None = None, labels: dict[str, dict[str, str]] | None = None,
                 time_unit: str | None = None, backend: str = "numpy") -> None:
        self.scenarios = scenarios
        self.times = times
        self._data = data  # name -> (T, *dims, N)
        self._elements = elements  # name -> element tuples in C order
        self.units = units
        self.dims = dims or {}           # name -> dimension names (subranges by their own name)
        self.labels = labels or {}       # name -> {"label_en": ..., "label_zh": ..., "doc": ...}
        self.time_unit = time_unit
        self.backend = backend           # which backend computed these values
        self.status = np.zeros(len(scenarios), dtype=np.int8)   # RunStatus per run
        self.failures: list[RunFailure] = []

    def _set_failures(self, failures: list[RunFailure]) -> None:
        self.failures = sorted(failures, key=lambda f: f.run)
        for f in self.failures:
            self.status[f.run] = int(f.status)

    @property
    def ok(self) -> np.ndarray:
        """Bool per run: True where the run reached its end."""
        return self.status == RunStatus.SUCCESS

    def message(self, i: int) -> str:
        """One line on run i: 'ok', or the variable, time and cause of its failure."""
        for f in self.failures:
            if f.run == i:
                return f.message()
        return f"run {self.scenarios[i]!r} (#{i}): ok"

    @property
    def variables(self) -> list[str]:
        return list(self._data)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._data:
            raise KeyError(f"{name!r} was not saved; saved: {', '.join(self._data)}")
        return np.moveaxis(self._data[name], -1, 0)

    def __contains__(self, name: str) -> bool:
        return name in self._data

    def elements(self, name: str) -> list[tuple[str, ...]]:
        """A saved variable's element tuples in C order ([()] for a variable without dimensions)."""
        if name not in self._elements:
            raise KeyError(f"{name!r} was not saved; saved: {', '.join(self._data)}")
        return list(self._elements[name])

    def to_xarray(self):
        """An xarray Dataset: one DataArray per variable over (run, time, *its dimensions), the runs'
        scenario labels, the times and each dimension's elements as coordinates; units, labels and
        docs as attributes; ``status`` (RunStatus per run) as a variable, failures' messages in its attrs."""
        import xarray as xr  # imported on first use

        coords: dict[str, object] = {"run": list(self.scenarios), "time": np.asarray(self.times)}
        data_vars = {}
        for name, arr in self._data.items():
            dims = tuple(self.dims.get(name, ()))
            els = self._elements[name]
            if len(dims) != arr.ndim - 2:   # no dimension names known: number the axes
                dims = tuple(f"{name}_dim{i}" for i in range(arr.ndim - 2))
            for i, d in enumerate(dims):
                values = list(dict.fromkeys(e[i] for e in els)) if els != [()] else []
                if d in coords and list(coords[d]) != values:
                    d = f"{name}_{d}"
                    dims = dims[:i] + (d,) + dims[i + 1:]
                coords[d] = values
            attrs = {k: v for k, v in {"units": self.units.get(name), **self.labels.get(name, {})}.items()
                     if v is not None}
            data_vars[name] = (("run", "time", *dims), np.moveaxis(arr, -1, 0), attrs)
        data_vars["status"] = ("run", self.status.astype(int), {
            "meaning": ", ".join(f"{int(s)} = {s.name.lower()}" for s in RunStatus),
            "failures": "; ".join(f.message() for f in self.failures)})
        ds = xr.Dataset(data_vars, coords=coords, attrs={"backend": self.backend})
        if self.time_unit:
            ds["time"].attrs["units"] = self.time_unit
        return ds

    def columns(self) -> list[str]:
        cols = []
        for name in self._data:
            els = self._elements[name]
            cols += [name] if els == [()] else [f"{name}[{','.join(e)}]" for e in els]
        return cols

    def to_dataframe(self):
        """MultiIndex (scenario, time) rows; one column per variable element (a pandas DataFrame)."""
        import pandas as pd  # imported on first use: it dominates a cold start

        n, t = len(self.scenarios), len(self.times)
        blocks = []
        for arr in self._data.values():
            flat = arr.reshape(t, -1, n)  # (T, elements, N)
            blocks.append(np.transpose(flat, (2, 0, 1)).reshape(n * t, -1))
        values = np.concatenate(blocks, axis=1) if blocks else np.empty((n * t, 0))
        index = pd.MultiIndex.from_product([self.scenarios, self.times], names=["scenario", "time"])
        return pd.DataFrame(values, index=index, columns=self.columns())

    def write(self, path: str | Path) -> None:
        """Write CSV or Parquet (by suffix), atomically: a crash never leaves half a file."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise EngineError(f"{path}: output must end in .csv or .parquet")
        df = self.to_dataframe().reset_index()
        write_frame_atomic(df, path)


def write_frame_atomic(df, path: Path) -> None:
    """Write a DataFrame to CSV/Parquet through a temporary file and an atomic rename."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.exists():
        raise EngineError(f"{path}: folder {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    os.close(fd)
    try:
        if path.suffix.lower() == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
