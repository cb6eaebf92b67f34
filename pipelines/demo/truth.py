"""The synthetic population's true values (CONTRACT §7 `demo_truth.json`).

Truths are computed on the whole population's answers with the same column definitions the pipeline
publishes (scales.add_scores, indicators.outcomes_for), so a test can compare an estimate row with the
truth row of the same wave, instrument, indicator, stat and level.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook
from pipelines.config import Config
from pipelines.demo.population import EFFECTS
from pipelines.indicators import outcomes_for
from pipelines.scales import add_scores


def population_clean(answers: pd.DataFrame, book: Codebook) -> pd.DataFrame:
    """The population's answers in clean-table form: numbers parsed, scores added."""
    frame = answers.copy()
    for q in book.answer_questions:
        if q.type in ("integer", "decimal") and q.name in frame:
            frame[q.name] = pd.to_numeric(frame[q.name], errors="coerce").astype("Float64")
    return add_scores(frame, book)


def estimate_truths(frame: pd.DataFrame, book: Codebook, wave: str) -> list[dict]:
    rows: list[dict] = []

    def add(indicator: str, stat: str, level: str, value: float) -> None:
        if value == value:  # skip NaN
            rows.append({"wave": wave, "instrument": book.instrument, "indicator": indicator, "stat": stat,
                         "level": level, "value": round(float(value), 10)})

    for q in book.answer_questions:
        if q.type == "select_one":
            col = pd.to_numeric(frame[q.name], errors="coerce").dropna()
            if not len(col):
                continue
            shares = col.value_counts(normalize=True)
            for code in q.codes:
                add(q.name, "proportion", str(code), shares.get(code, 0.0))
            if q.measure in ("ordinal", "interval"):
                add(q.name, "mean", "", col.mean())
        elif q.type == "select_multiple":
            for code in q.codes:
                col = pd.to_numeric(frame[q.option_column(code)], errors="coerce").dropna()
                if len(col):
                    add(q.option_column(code), "proportion", "1", (col == 1).mean())
        elif q.type in ("integer", "decimal"):
            col = pd.to_numeric(frame[q.name], errors="coerce").dropna()
            if len(col):
                add(q.name, "mean", "", col.mean())
    for column in frame.columns:
        if column.endswith(("_score", "_count")) or any(column == f"{s.id}_{sub}" for s in book.scales.values()
                                                        for sub in s.subscales):
            col = pd.to_numeric(frame[column], errors="coerce").dropna()
            if len(col):
                add(column, "mean", "", col.mean())
        elif column.endswith(("_low", "_correct")):
            col = pd.to_numeric(frame[column], errors="coerce").dropna()
            if len(col):
                add(column, "proportion", "1", (col == 1).mean())
    return rows


def effect_truths(frames: dict[str, pd.DataFrame], book: Codebook, config: Config,
                  samples: dict[str, np.ndarray]) -> list[dict]:
    """True changes from the baseline to every later wave, with whether the demo's samples can detect them."""
    waves = [w.id for w in config.waves if w.id in frames]
    base = waves[0]
    rows = []
    for outcome in outcomes_for(book, config):
        pre = outcome.values(frames[base]).astype(float).to_numpy()
        for wave in waves[1:]:
            post = outcome.values(frames[wave]).astype(float).to_numpy()
            diff = np.nanmean(post) - np.nanmean(pre)
            both = ~np.isnan(pre) & ~np.isnan(post)
            sd_change = np.nanstd(post[both] - pre[both], ddof=1) if both.sum() > 2 else np.nan
            n_pairs = 0.85 * len(np.intersect1d(samples.get(base, []), samples.get(wave, [])))
            n_pre, n_post = 0.85 * len(samples.get(base, [])), 0.85 * len(samples.get(wave, []))
            real = EFFECTS.get(outcome.indicator, 0.0) != 0.0
            for scope in ("panel", "cross_section"):
                if scope == "panel":
                    se = sd_change / np.sqrt(max(n_pairs, 1))
                else:
                    se = 1.3 * np.sqrt(np.nanvar(pre) / max(n_pre, 1) + np.nanvar(post) / max(n_post, 1))
                # "detectable": a real change at least 4.5 standard errors from zero, which survives
                # Holm/BH adjustment across the report's families with near certainty
                detectable = bool(real and se > 0 and abs(diff) / se >= 4.5)
                rows.append({"instrument": book.instrument, "indicator": outcome.column,
                             "indicator_id": outcome.indicator, "scope": scope, "pre_wave": base,
                             "post_wave": wave, "diff": round(float(diff), 10), "detectable": detectable,
                             "true_effect_sd": EFFECTS.get(outcome.indicator, 0.0)})
    return rows
