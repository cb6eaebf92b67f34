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


def item_scores(frame: pd.DataFrame, q: Question) -> pd.Series:
    """The item's contribution to its scale: the choice score (reversed if needed), or 1/0 for a quiz item."""
    if q.correct is not None:
        return quiz_correct(frame, q)
    codes = pd.to_numeric(frame[q.name], errors="coerce").astype("Float64")
    if not q.choices:
        return codes
    mapping = {c.code: c.score for c in q.choices}
    scores = codes.map(mapping).astype("Float64")
    if q.reverse:
        lo, hi = min(mapping.values()), max(mapping.values())
        scores = (lo + hi) - scores
    return scores


def quiz_correct(frame: pd.DataFrame, q: Question) -> pd.Series:
    codes = pd.to_numeric(frame[q.name], errors="coerce")
    out = (codes == q.correct).astype("Float64")
    out[codes.isna()] = pd.NA
    return out


def _combine(scores: pd.DataFrame, method: str, min_answered: float) -> pd.Series:
    answered = scores.notna().sum(axis=1)
    k = scores.shape[1]
    mean = scores.mean(axis=1, skipna=True)
    value = mean * k if method == "sum" else mean
    enough = answered >= np.ceil(min_answered * k - 1e-9)
    return value.where(enough).astype("Float64")


def score_scale(frame: pd.DataFrame, book: Codebook, scale: Scale) -> dict[str, pd.Series]:
    """Columns for one scale: `<id>_score`, one per subscale, and `<id>_low` where a low band is defined."""
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


def add_scores(frame: pd.DataFrame, book: Codebook) -> pd.DataFrame:
    """The frame with quiz `_correct` columns and every scale's score columns appended."""
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
    return pd.concat([frame.drop(columns=[c for c in new if c in frame.columns]),
                      pd.DataFrame(new, index=frame.index)], axis=1)


def option_count(frame: pd.DataFrame, options: list[str]) -> pd.Series:
    """How many options of a multi-select were chosen; missing when the question was not answered."""
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
