"""The rows a compiled model is checked on: the model's own input range, at every magnitude.

A model carries what it learned about its inputs: split thresholds (trees, boosters), scaler
statistics, LightGBM's feature ranges, linear coefficients. Each format module lists those
"notable values" per feature; this module turns them into probe rows:

- each notable value, its float64 neighbours and its float32 neighbours: a compiled model
  that reads its input as float32 takes the other branch of a split there;
- values spread over the span the notable values cover, and the midpoints between them
  (one per interval a split defines);
- values at every magnitude a tabular feature takes in practice (1e-3 to 1e10, epoch
  seconds with milliseconds, integer amounts to 1e9), because a model without statistics
  (a plain LinearRegression) says nothing about its range, and float32 is exact for none
  of these beyond 2**24.

Rows mix the features independently (each column is its pool, shuffled), so that tree paths
through several features get exercised too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .formats.base import Array

MIN_ROWS = 1024
MAX_ROWS = 8192
SPREAD = 256  # values over each feature's span, and over the magnitudes


def magnitudes(rng: np.random.Generator) -> Array:
    """Values real tabular features take: log-spread over 1e-3..1e10, both signs, and the
    shapes of epoch seconds, cents and ids."""
    signs = rng.choice([-1.0, 1.0], SPREAD)
    spread = signs * 10.0 ** rng.uniform(-3.0, 10.0, SPREAD)
    epoch = np.round(rng.uniform(1.5e9, 1.9e9, SPREAD // 4), 3)
    cents = np.round(rng.uniform(0.0, 1e9, SPREAD // 4))
    small = rng.normal(0.0, 1.0, SPREAD // 4)
    return np.concatenate([spread, epoch, cents, small, [0.0, 1.0, -1.0]])


def around(values: Array) -> Array:
    """The values, their float64 neighbours, and the float32 numbers nearest to them."""
    values = values[np.isfinite(values)]
    single = values.astype(np.float32)
    with np.errstate(over="ignore"):
        parts = [
            values,
            np.nextafter(values, -np.inf),
            np.nextafter(values, np.inf),
            single.astype(np.float64),
            np.nextafter(single, np.float32(-np.inf)).astype(np.float64),
            np.nextafter(single, np.float32(np.inf)).astype(np.float64),
        ]
    out: Array = np.concatenate(parts)
    finite: Array = out[np.isfinite(out)]
    return finite


def feature_pool(notable: Sequence[float], rng: np.random.Generator) -> Array:
    pool = [magnitudes(rng)]
    values = np.unique(np.asarray(notable, dtype=np.float64))
    values = values[np.isfinite(values)]
    if values.size:
        pool.append(around(values))
        low, high = float(values[0]), float(values[-1])
        margin = max(high - low, abs(high), abs(low), 1.0) * 0.1
        pool.append(rng.uniform(low - margin, high + margin, SPREAD))
        pool.append((values[:-1] + values[1:]) / 2.0)
    return np.unique(np.concatenate(pool))


def probe_rows(n_features: int, notable: Mapping[int, Sequence[float]], seed: int = 0) -> Array:
    """float64 rows over the model's input range; see the module docstring."""
    rng = np.random.default_rng(seed)
    pools = [feature_pool(notable.get(j, ()), rng) for j in range(n_features)]
    rows = min(max(MIN_ROWS, max(p.size for p in pools)), MAX_ROWS)
    columns = []
    for pool in pools:
        tiled = np.resize(rng.permutation(pool), rows) if pool.size < rows else pool
        columns.append(rng.permutation(tiled)[:rows])
    return np.column_stack(columns)
