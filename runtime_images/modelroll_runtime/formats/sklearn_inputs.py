"""What a fitted scikit-learn estimator says about the inputs it takes: text, or named columns
and a value each column accepts (the warm-up's row, and each column's kind: string or number).

sklearn records column names (`feature_names_in_`) but not their dtypes, so a column's kind
is read off what was fitted on it: a OneHotEncoder's or OrdinalEncoder's categories, a
SimpleImputer's statistics, a text vectorizer. A column none of them covers is numeric.
"""

from __future__ import annotations

from typing import Any


def first_step(estimator: Any) -> Any:
    """The step that sees the raw input: a pipeline's first, through nested pipelines."""
    while getattr(estimator, "steps", None):
        estimator = estimator.steps[0][1]
    return estimator


def takes_text(estimator: Any) -> bool:
    """Whether the estimator takes a 1-D sequence of strings (a text vectorizer)."""
    try:
        tags = estimator.__sklearn_tags__().input_tags
    except AttributeError:  # not a sklearn estimator, or older than sklearn 1.6
        return hasattr(estimator, "build_analyzer")
    return bool(tags.string and not tags.two_d_array)


def column_examples(estimator: Any, columns: tuple[str, ...]) -> dict[str, Any]:
    """A value per column that the fitted estimator accepts; 0.0 where nothing says more."""
    examples: dict[str, Any] = dict.fromkeys(columns, 0.0)
    head = first_step(estimator)
    for _, transformer, selected in getattr(head, "transformers_", ()):
        names = _column_names(selected, columns)
        if transformer in ("drop", "passthrough") or not names:
            continue
        for column, value in zip(names, _accepted_values(transformer, len(names)), strict=False):
            if value is not None:
                examples[column] = value
    if not getattr(head, "transformers_", None):  # an encoder fitted on the frame itself
        for column, value in zip(columns, _accepted_values(head, len(columns)), strict=False):
            if value is not None:
                examples[column] = value
    return examples


def _column_names(selected: Any, columns: tuple[str, ...]) -> list[str]:
    """A ColumnTransformer's column selection (names, indices, a mask, a slice) as names."""
    import numpy as np

    if isinstance(selected, str):
        return [selected]
    if isinstance(selected, slice):
        return list(columns[selected])
    picked = np.asarray(selected)
    if picked.dtype == bool:
        return [c for c, keep in zip(columns, picked, strict=False) if keep]
    if picked.dtype.kind in "iu":
        return [columns[i] for i in picked]
    return [str(c) for c in picked]


def _accepted_values(transformer: Any, width: int) -> list[Any]:
    """Per column of the transformer's input, a value it was fitted on, or None."""
    step = first_step(transformer)
    if takes_text(step):
        return [""] * width
    categories = getattr(step, "categories_", None)
    if categories is not None:
        return [_plain(c[0]) if len(c) else None for c in categories]
    statistics = getattr(step, "statistics_", None)
    if statistics is not None:
        return [_plain(v) for v in statistics]
    return [None] * width


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds: str stays str, numbers become float."""
    if isinstance(value, str):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
