"""Weighting: base weights by compound, then raking to the instrument population's margins.

The clean table carries everything R needs to reproduce the design (CONTRACT §4 design.json):
`svydesign(ids=~1, strata=~stratum, weights=~base_weight, data)` followed by `rake()` on the margins gives
the column `weight` and every published standard error. A margin that cannot be used (a level with no
respondents) is dropped from raking and reported, never silently patched.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipelines import survey
from pipelines.codebook import Codebook
from pipelines.config import Config

# population margin name → column of the clean table
MARGIN_COLUMNS = {"compound": "compound", "age_band": "age_band", "child_age_band": "child_age_band",
                  "hukou": "hukou_group"}


@dataclass
class WeightResult:
    frame: pd.DataFrame
    design: dict
    diagnostics: dict
    composition: pd.DataFrame
    log: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def weight_table(clean: pd.DataFrame, book: Codebook, config: Config) -> WeightResult:
    frame = clean.copy()
    wave = str(frame["wave"].iloc[0]) if len(frame) else ""
    population = config.populations.get(book.population)
    empty_log = pd.DataFrame(columns=["response_id", "column", "old", "new", "rule"])
    if population is None or not len(frame):
        frame["stratum"] = pd.array(["all"] * len(frame), dtype="string")
        frame["base_weight"] = 1.0
        frame["weight"] = 1.0
        design = {"weight": "weight", "strata": None, "psu": None, "calibration": None}
        return WeightResult(frame, design, _diagnostics(frame, wave, book, None, None), pd.DataFrame(), empty_log,
                            [] if population is None else ["no responses to weight"])
    warnings: list[str] = []
    margins: dict[str, dict[str, float]] = {}
    logs = []
    for name, levels in population.margins.items():
        column = MARGIN_COLUMNS.get(name, name)
        if column not in frame.columns:
            warnings.append(f"margin {name}: column {column} is not in the {book.instrument} table; not raked on it")
            continue
        logs.append(_impute_for_weighting(frame, column))
        present = set(frame[column].dropna().astype(str))
        empty = [lvl for lvl in levels if lvl not in present]
        if empty:
            warnings.append(f"margin {name}: no respondents in {', '.join(empty)}; margin dropped from raking")
            continue
        margins[column] = levels
    strata_col = config.strata if config.strata in frame.columns else None
    frame["stratum"] = frame[strata_col].astype("string") if strata_col else pd.array(["all"] * len(frame), dtype="string")
    if "compound" in margins:
        n_h = frame.groupby("compound")["response_id"].transform("count")
        frame["base_weight"] = frame["compound"].map(margins["compound"]).astype(float) / n_h
    else:
        frame["base_weight"] = population.total / len(frame)
    result = None
    if margins:
        t = config.thresholds
        result = survey.rake(frame, "base_weight", margins, max_iter=t.rake_max_iterations, tol=t.rake_tolerance)
        frame["weight"] = result.weights.to_numpy()
        if not result.converged:
            warnings.append(f"raking did not converge in {result.iterations} iterations "
                            f"(largest margin error {result.max_margin_error:.3g})")
    else:
        frame["weight"] = frame["base_weight"]
    design = {"weight": "weight", "strata": "stratum", "psu": None,
              "calibration": {"base_weight": "base_weight",
                              "margins": {col: {str(k): float(v) for k, v in lv.items()} for col, lv in margins.items()},
                              "method": "raking", "bounds": None,
                              "max_iterations": config.thresholds.rake_max_iterations,
                              "tolerance": config.thresholds.rake_tolerance} if margins else None}
    log = pd.concat([x for x in logs if x is not None and len(x)] or [empty_log], ignore_index=True)
    return WeightResult(frame, design, _diagnostics(frame, wave, book, population, result),
                        _composition(frame, wave, book, population), log, warnings)


def _impute_for_weighting(frame: pd.DataFrame, column: str) -> pd.DataFrame | None:
    """A missing weighting variable gets its compound's most common level (logged): R's rake needs it."""
    missing = frame[column].isna()
    if not missing.any():
        return None
    if "compound" in frame.columns and column != "compound":
        mode = frame.groupby("compound")[column].agg(lambda s: s.mode().iloc[0] if s.notna().any() else pd.NA)
        fill = frame.loc[missing, "compound"].map(mode)
    else:
        fill = pd.Series(frame[column].mode().iloc[0], index=frame.index[missing])
    overall = frame[column].mode()
    fill = fill.fillna(overall.iloc[0] if len(overall) else pd.NA)
    frame.loc[missing, column] = fill
    return pd.DataFrame({"response_id": frame.loc[missing, "response_id"], "column": column, "old": "",
                         "new": fill.astype(str), "rule": "imputed_for_weighting"})


def _diagnostics(frame, wave, book, population, result) -> dict:
    w = frame["weight"].to_numpy(dtype=float) if len(frame) else np.array([])
    return {
        "wave": wave, "instrument": book.instrument, "n": int(len(frame)),
        "sum_weights": float(w.sum()) if len(w) else 0.0,
        "population_total": float(population.total) if population else None,
        "deff_kish": float(survey.kish_deff(w)) if len(w) else None,
        "n_effective": float(survey.effective_n(w)) if len(w) else None,
        "weight_min": float(w.min()) if len(w) else None, "weight_max": float(w.max()) if len(w) else None,
        "iterations": int(result.iterations) if result else 0,
        "converged": bool(result.converged) if result else True,
    }


def _composition(frame, wave, book, population) -> pd.DataFrame:
    rows = []
    weight = frame["weight"]
    weight_total = float(weight.sum())
    for name, levels in population.margins.items():
        column = MARGIN_COLUMNS.get(name, name)
        if column not in frame.columns:
            continue
        total = sum(levels.values())
        texts = frame[column].astype(str)
        counts = texts.value_counts()
        # grouped by the texts' array: a Series key makes pandas look it up as a column name first, and the
        # failed lookup formats the whole Series for its KeyError
        weighted = weight.groupby(texts.to_numpy()).sum()
        for level, pop_count in levels.items():
            rows.append({"wave": wave, "instrument": book.instrument, "variable": name, "level": level,
                         "sample_n": int(counts.get(level, 0)), "sample_share": counts.get(level, 0) / max(len(frame), 1),
                         "weighted_share": float(weighted.get(level, 0.0)) / weight_total,
                         "population_share": pop_count / total})
    return pd.DataFrame(rows)


def design_from_json(frame: pd.DataFrame, spec: dict) -> survey.Design:
    """The survey design of a clean table as design.json describes it (for notebooks and the analysis)."""
    design = survey.make_design(frame, spec["weight"], strata=spec.get("strata"), psu=spec.get("psu"))
    calibration = spec.get("calibration")
    if calibration and calibration.get("margins"):
        from dataclasses import replace
        design = replace(design, rake_margins=tuple(calibration["margins"]))
    return design
