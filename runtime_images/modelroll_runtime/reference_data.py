"""Reference data for `modelroll package`: CSV (with a header row), Parquet (needs pyarrow)
or .npy, read into named columns: float64 where every value is a number, strings otherwise.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .formats.base import Array

SUFFIXES = (".csv", ".parquet", ".pq", ".npy")


class ReferenceError(ValueError):
    """The reference data cannot be read, or does not fit the model."""


@dataclass(frozen=True)
class Table:
    names: tuple[str, ...]
    columns: tuple[Array, ...]  # float64, or object (strings; None for missing)

    @property
    def rows(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def without(self, name: str) -> Table:
        if name not in self.names:
            raise ReferenceError(
                f"no column {name!r} in the reference data ({', '.join(self.names)})"
            )
        keep = [i for i, n in enumerate(self.names) if n != name]
        return Table(tuple(self.names[i] for i in keep), tuple(self.columns[i] for i in keep))

    def column(self, name: str) -> Array:
        if name not in self.names:
            raise ReferenceError(
                f"the model takes column {name!r}, which the reference data lacks "
                f"(it has {', '.join(self.names)})"
            )
        return self.columns[self.names.index(name)]


def read(path: Path) -> Table:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ReferenceError(f"reference data {path} does not exist")
    if suffix == ".csv":
        table = _read_csv(path)
    elif suffix in (".parquet", ".pq"):
        table = _read_parquet(path)
    elif suffix == ".npy":
        table = _read_npy(path)
    else:
        raise ReferenceError(
            f"reference data {path.name}: unknown type {suffix or '(no suffix)'}; "
            f"use one of {', '.join(SUFFIXES)}"
        )
    if table.rows == 0:
        raise ReferenceError(f"reference data {path.name} has no rows")
    return table


def _column(values: list[str]) -> Array:
    """float64 when every non-empty value is a number (empty: NaN), else strings."""
    try:
        return np.asarray([float(v) if v.strip() else np.nan for v in values], dtype=np.float64)
    except ValueError:
        return np.asarray([v if v != "" else None for v in values], dtype=object)


def _read_csv(path: Path) -> Table:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise ReferenceError(f"reference data {path.name} is empty") from None
        rows = [row for row in reader if row]
    if all(_is_number(h) for h in header):
        raise ReferenceError(
            f"reference data {path.name} needs a header row naming its columns; "
            f"its first row is all numbers"
        )
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ReferenceError(
                f"{path.name} line {line}: {len(row)} values, the header names {len(header)}"
            )
    columns = tuple(_column([row[j] for row in rows]) for j in range(len(header)))
    return Table(tuple(h.strip() for h in header), columns)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_parquet(path: Path) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ReferenceError(
            f"reading {path.name} needs pyarrow, which is not installed: pip install pyarrow, "
            "or give the reference data as .csv or .npy"
        ) from None
    try:
        data = pq.read_table(path)
    except Exception as exc:  # pyarrow's ArrowInvalid and friends
        raise ReferenceError(f"cannot read {path.name} as Parquet: {exc}") from None
    columns = []
    for column in data.columns:
        values = column.to_numpy(zero_copy_only=False)
        if values.dtype.kind in "fiub":
            columns.append(values.astype(np.float64))
        else:
            columns.append(
                np.asarray([None if v is None else str(v) for v in values], dtype=object)
            )
    return Table(tuple(str(n) for n in data.column_names), tuple(columns))


def _read_npy(path: Path) -> Table:
    try:
        array = np.load(path, allow_pickle=False)  # a pickled object array could run code
    except ValueError as exc:
        raise ReferenceError(f"{path.name}: {exc} (object arrays are refused)") from None
    if array.dtype.names:  # a structured array: its fields are the columns
        names = tuple(array.dtype.names)
        columns = tuple(_typed(array[n]) for n in names)
        return Table(names, columns)
    if array.ndim != 2:
        raise ReferenceError(f"{path.name}: expected a 2-D array of rows, got shape {array.shape}")
    if array.dtype.kind not in "fiub":
        raise ReferenceError(f"{path.name}: expected numbers, got dtype {array.dtype}")
    matrix = array.astype(np.float64)
    names = tuple(f"f{j}" for j in range(matrix.shape[1]))
    return Table(names, tuple(matrix[:, j].copy() for j in range(matrix.shape[1])))


def _typed(values: Array) -> Array:
    if values.dtype.kind in "fiub":
        return values.astype(np.float64)
    return np.asarray([str(v) for v in values.tolist()], dtype=object)
