"""Scale scores and quiz scoring, computed from the codebook's rules.

One implementation serves the clean stage, the analysis, the notebooks and the demo's truth, so a score
means the same thing everywhere: item scores from the choices' `score` column, reversed items mirrored
within their score range, a score only when at least `min_answered` of the items are answered, and a
`sum` prorated from the answered items' mean (so one skipped item does not lower the score).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook, Question, Scale
from pipelines.frames import column_arrays


def _numbers(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, missing) of a column read as numbers (`pd.to_numeric(errors="coerce")`), as plain arrays."""
    cells = column_arrays(frame, [name])[0]  # (array methods: a tenth of the Series methods' cost)
    if not (isinstance(cells.dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_numeric_dtype(cells.dtype)
            and not pd.api.types.is_bool_dtype(cells.dtype)):
        cells = pd.to_numeric(frame[name], errors="coerce").array
    return np.asarray(cells.to_numpy(dtype=np.float64, na_value=0.0)), np.asarray(cells.isna(), dtype=bool)


def _float_series(values: np.ndarray, missing: np.ndarray, index: pd.Index, name=None) -> pd.Series:
    return pd.Series(pd.arrays.FloatingArray(values, missing), index=index, name=name, copy=False)


def item_parts(frame: pd.DataFrame, q: Question) -> tuple[np.ndarray, np.ndarray]:
    """`item_scores` as (values, missing) arrays: scores looked up by code in one vectorised step."""
    if q.correct is not None:
        return _quiz_parts(frame, q)
    codes, missing = _numbers(frame, q.name)
    if not q.choices:
        return codes, missing
    mapping = {c.code: c.score for c in q.choices}
    known = np.array(sorted(mapping), dtype=np.float64)
    at = np.minimum(np.searchsorted(known, codes), len(known) - 1)
    found = (known[at] == codes) & ~missing  # a code that is not an option scores nothing (as Series.map)
    table = np.array([mapping[int(k)] for k in known], dtype=np.float64)
    scores = np.where(found, table[at], np.nan)
    missing = ~found | np.isnan(scores)
    if q.reverse:
        lo, hi = min(mapping.values()), max(mapping.values())
        scores = (lo + hi) - scores
    return scores, missing


def _quiz_parts(frame: pd.DataFrame, q: Question) -> tuple[np.ndarray, np.ndarray]:
    codes, missing = _numbers(frame, q.name)
    return (codes == q.correct).astype(np.float64), missing


def item_scores(frame: pd.DataFrame, q: Question) -> pd.Series:
    """The item's contribution to its scale: the choice score (reversed if needed), or 1/0 for a quiz item."""
    return _float_series(*item_parts(frame, q), frame.index, frame[q.name].name)


def quiz_correct(frame: pd.DataFrame, q: Question) -> pd.Series:
    return _float_series(*_quiz_parts(frame, q), frame.index, frame[q.name].name)


def _row_mean(values: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row means over the answered cells of a (rows, items) table, summed left to right with the same
    compensated (Kahan) summation as pandas' `DataFrame.mean(axis=1)` on Float64 columns, so the scores are
    bit-for-bit what pandas gives."""
    n, k = values.shape
    total, compensation = np.zeros(n), np.zeros(n)
    count = np.zeros(n, dtype=np.int64)
    with np.errstate(invalid="ignore", over="ignore"):
        for j in range(k):
            use = ~missing[:, j]
            y = values[:, j] - compensation
            t = total + y
            c = t - total - y
            c[np.isnan(c)] = 0.0  # an infinite value: keep it infinite, not NaN (as pandas)
            compensation = np.where(use, c, compensation)
            total = np.where(use, t, total)
            count += use
    empty = count == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(empty, np.nan, total / np.maximum(count, 1))
    return mean, empty


def _combine_parts(values: np.ndarray, missing: np.ndarray, method: str,
                   min_answered: float) -> tuple[np.ndarray, np.ndarray]:
    k = values.shape[1]
    answered = (~missing).sum(axis=1)
    mean, none = _row_mean(values, missing)
    value = mean * k if method == "sum" else mean
    enough = answered >= np.ceil(min_answered * k - 1e-9)
    return value, none | ~enough


def _combine(scores: pd.DataFrame, method: str, min_answered: float) -> pd.Series:
    answered = scores.notna().sum(axis=1)
    k = scores.shape[1]
    mean = scores.mean(axis=1, skipna=True)
    value = mean * k if method == "sum" else mean
    enough = answered >= np.ceil(min_answered * k - 1e-9)
    return value.where(enough).astype("Float64")


def score_scale(frame: pd.DataFrame, book: Codebook, scale: Scale) -> dict[str, pd.Series]:
    """Columns for one scale: `<id>_score`, one per subscale, and `<id>_low` where a low band is defined.

    Item scores are kept as (values, missing) arrays and combined with numpy: building a Series per item and
    a frame per scale cost more than the arithmetic (pandas itself is used only for an empty table)."""
    if not len(frame) or not scale.items:
        return _score_scale_pandas(frame, book, scale)
    items = {name: item_parts(frame, book[name]) for name in scale.items}

    def combine(names) -> tuple[np.ndarray, np.ndarray]:
        values = np.column_stack([items[name][0] for name in names])
        missing = np.column_stack([items[name][1] for name in names])
        return _combine_parts(values, missing, scale.method, scale.min_answered)

    raw, raw_missing = combine(list(items))
    out = {scale.score_column: _float_series(raw * scale.multiplier, raw_missing, frame.index)}
    for sub, names in sorted(scale.subscales.items()):
        out[scale.subscale_column(sub)] = _float_series(*combine(list(names)), frame.index) if names else \
            _combine(pd.DataFrame(index=frame.index), scale.method, scale.min_answered)
    if scale.low_cut is not None:
        with np.errstate(invalid="ignore"):
            low = (raw < scale.low_cut).astype(np.float64)
        out[f"{scale.id}_low"] = _float_series(low, raw_missing.copy(), frame.index)
    return out


def _score_scale_pandas(frame: pd.DataFrame, book: Codebook, scale: Scale) -> dict[str, pd.Series]:
    items = {name: item_scores(frame, book[name]) for name in scale.items}
    table = pd.DataFrame(items, index=frame.index)
    raw = _combine(table, scale.method, scale.min_answered)
    out = {scale.score_column: (raw * scale.multiplier).astype("Float64")}
    for sub, names in sorted(scale.subscales.items()):
        out[scale.subscale_column(sub)] = _combine(table[list(names)], scale.method, scale.min_answered)
    if scale.low_cut is not None:
        low = (raw < scale.low_cut).astype("Float64")
        low[raw.isna()] = pd.NA
        out[f"{scale.id}_low"] = low
    return out


def add_scores(frame: pd.DataFrame, book: Codebook, copy: bool = True) -> pd.DataFrame:
    """The frame with quiz `_correct` columns and every scale's score columns appended (`copy=False`: the result
    may share memory with `frame`, for a caller that discards `frame`)."""
    new: dict[str, pd.Series] = {}
    for q in book.answer_questions:
        if q.correct is not None and q.name in frame.columns:
            new[q.correct_column] = quiz_correct(frame, q)
        if q.type == "select_multiple" and q.indicator:
            options = [q.option_column(c) for c in q.codes if q.option_column(c) in frame.columns]
            if options:
                new[f"{q.name}_count"] = option_count(frame, options)
    for scale in book.scales.values():
        if all(name in frame.columns for name in scale.items):
            new.update(score_scale(frame, book, scale))
    if not new:
        return frame
    if frame.columns.is_unique:
        # the frame's column arrays and the new ones wrapped once (what the concat below gives, the same
        # columns in the same order, at a third of its cost over ~150 one-column blocks)
        kept = [c for c in frame.columns if c not in new]
        data = dict(zip(kept, column_arrays(frame, kept)))
        data.update((name, column.array) for name, column in new.items())
        out = pd.DataFrame(data, index=frame.index, copy=copy)
        if out.dtypes.tolist() == [*frame.dtypes[kept], *(column.dtype for column in new.values())]:
            return out
    replaced = [c for c in new if c in frame.columns]
    # (concat copies the frame: dropping nothing first would only copy it twice)
    return pd.concat([frame.drop(columns=replaced) if replaced else frame, pd.DataFrame(new, index=frame.index)],
                     axis=1, copy=copy)


def option_count(frame: pd.DataFrame, options: list[str]) -> pd.Series:
    """How many options of a multi-select were chosen; missing when the question was not answered."""
    columns = [frame[c] for c in options]
    if len(frame) and all(pd.api.types.is_integer_dtype(c.dtype) for c in columns):
        # whole numbers add up exactly: a plain sum is what pandas' row sum gives
        missing = np.column_stack([c.isna().to_numpy(dtype=bool) for c in columns])
        values = np.column_stack([c.to_numpy(dtype=np.int64, na_value=0) for c in columns])
        return _float_series(np.where(missing, 0, values).sum(axis=1).astype(np.float64), missing.all(axis=1),
                             frame.index)
    table = frame[options].apply(pd.to_numeric, errors="coerce")
    count = table.sum(axis=1, min_count=1).astype("Float64")
    return count.where(table.notna().any(axis=1))


def score_columns(book: Codebook) -> list[str]:
    """Names of the columns add_scores() creates, in order."""
    cols = []
    for q in book.answer_questions:
        if q.correct is not None:
            cols.append(q.correct_column)
        if q.type == "select_multiple" and q.indicator:
            cols.append(f"{q.name}_count")
    for scale in book.scales.values():
        cols.append(scale.score_column)
        cols.extend(scale.subscale_column(s) for s in sorted(scale.subscales))
        if scale.low_cut is not None:
            cols.append(f"{scale.id}_low")
    return cols
