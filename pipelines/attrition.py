"""Panel attrition: are the baseline respondents we found again like the ones we lost?

A panel comparison (outcomes.csv, scope `panel`) is only as good as its follow-up: if, say, floating
families or parents with low scores at baseline answer less often later, the panel's change describes the
families who stayed. For every instrument with a panel and every later wave, this module compares the
baseline characteristics of the baseline respondents **followed** (their respondent_key appears in that
wave) with those **lost** (it does not): compound, age band, household registration, relation and gender
(one row per level, a chi-square or Fisher test per characteristic) and the baseline values of the outcome
scales (means, Welch's t). Tests come from `pipelines.stats`, so each equals its R counterpart; they are
descriptive checks, left unadjusted (the report says so).

Respondents without a respondent key (no phone number given) can never be looked for in a later wave, so
they are neither followed nor lost: they are excluded from both groups and counted in `n_unkeyed`. A key
that appears twice at baseline counts once (its first response), as in the panel pairs.

Counts of 1..min_cell-1 respondents are withheld (CONTRACT §6): such a cell's count and share are blanked
and the row flagged `suppressed`; when a group (followed or lost) of a characteristic has exactly one such
cell, its next smallest cell is withheld too, so the group total cannot give the small one away. A test
whose followed or lost group has fewer than min_cell answers is not reported.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipelines import stats
from pipelines.codebook import Codebook
from pipelines.config import Config
from pipelines.indicators import outcomes_for

COLUMNS = ["instrument", "pre_wave", "post_wave", "characteristic", "level", "stat", "n_followed", "n_lost",
           "value_followed", "value_lost", "test", "statistic", "df", "p_value", "effect_size_name", "effect_size",
           "n_unkeyed", "note", "suppressed"]
TEST_FIELDS = ["test", "statistic", "df", "p_value", "effect_size_name", "effect_size"]
CATEGORICAL_ROLES = ("compound", "respondent_role", "gender")
BAND_COLUMNS = ("age_band", "child_age_band")


def _canon(value) -> str:
    """Codes as text: 1.0 → '1', missing → ''."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (int, np.integer)) or (isinstance(value, (float, np.floating)) and float(value).is_integer()):
        return str(int(value))
    return str(value).strip()


def characteristics(book: Codebook, frame: pd.DataFrame, config: Config) -> list[tuple[str, str, list[str]]]:
    """(column, kind, level order) for each baseline characteristic present: kind `categorical` or `mean`."""
    out: list[tuple[str, str, list[str]]] = []
    roles = {role: book.by_role(role) for role in CATEGORICAL_ROLES}
    if roles["compound"] is not None and roles["compound"].name in frame:
        out.append((roles["compound"].name, "categorical", [c.id for c in config.compounds]))
    for band in BAND_COLUMNS:
        if band in frame:
            out.append((band, "categorical", [b[0] for b in config.age_bands.get(band, ())]))
    if "hukou_group" in frame:
        out.append(("hukou_group", "categorical", ["registered", "floating"]))
    for role in ("respondent_role", "gender"):
        q = roles[role]
        if q is not None and q.name in frame:
            out.append((q.name, "categorical", [str(c) for c in q.codes]))
    scale_columns = {s.score_column for s in book.scales.values()}
    for o in outcomes_for(book, config):
        if o.column in scale_columns and o.column in frame:
            out.append((o.column, "mean", []))
    return out


def _ordered(levels: set[str], order: list[str]) -> list[str]:
    known = [lv for lv in order if lv in levels]
    rest = sorted(levels - set(known), key=lambda v: (0, float(v), v) if v.replace(".", "", 1).isdigit() else (1, 0, v))
    return known + rest


def _categorical_test(lost: pd.Series, followed: pd.Series) -> dict:
    """chisq.test on the group × level table (Yates for 2×2, as R); fisher.test for a 2×2 with an expected
    count under 5. Cramér's V (φ for 2×2, from the uncorrected statistic) is the effect size either way."""
    res = stats.independent(lost, followed, level="nominal")
    out = {k: res.get(k) for k in TEST_FIELDS}
    levels = sorted(set(lost) | set(followed))
    lost_values, followed_values = lost.to_numpy(), followed.to_numpy()   # (arrays compare faster than Series)
    table = np.array([[np.sum(followed_values == lv) for lv in levels], [np.sum(lost_values == lv) for lv in levels]],
                     float)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    small = int((expected < 5).sum())
    note = ""
    if len(levels) == 2 and small:
        first = levels[0]
        fisher = stats.independent((lost == first).astype(float), (followed == first).astype(float), level="binary",
                                   method="fisher_exact")
        out.update(test=fisher["test"], statistic=None, df=None, p_value=fisher["p_value"])
    elif small:
        note = f"{small} of {expected.size} expected counts under 5: the chi-square p-value is approximate"
    return out | {"note": note}


def _suppress_cells(rows: list[dict], min_cell: int) -> None:
    """Blank counts of 1..min_cell-1 (and their shares); one withheld cell in a group takes its next
    smallest neighbour with it, so the group's total does not reveal it."""
    for group in ("followed", "lost"):
        n_col, v_col = f"n_{group}", f"value_{group}"
        small = [r for r in rows if 0 < r[n_col] < min_cell]
        if len(small) == 1:
            others = [r for r in rows if r[n_col] >= min_cell]
            if others:
                small.append(min(others, key=lambda r: r[n_col]))
        for r in small:
            r[n_col] = None
            r[v_col] = None
            r["suppressed"] = True


class Baseline:
    """The baseline side of the comparison, prepared once per instrument: keyed respondents (first response
    per key) and each characteristic as text codes or numbers."""

    def __init__(self, base: pd.DataFrame, book: Codebook, config: Config):
        keys = base["respondent_key"].fillna("").astype(str)
        self.n_unkeyed = int((keys == "").sum())
        keyed = base[keys != ""].assign(respondent_key=keys[keys != ""]).drop_duplicates("respondent_key")
        self.keys = keyed["respondent_key"].to_numpy(dtype=object)
        self.columns: list[tuple[str, str, list[str], np.ndarray]] = []
        for column, kind, order in characteristics(book, keyed, config):
            if kind == "mean":
                values = pd.to_numeric(keyed[column], errors="coerce").astype(float).to_numpy()
            else:
                values = keyed[column].map(_canon).to_numpy(dtype=object)
            self.columns.append((column, kind, order, values))


def compare(baseline: Baseline, post_keys: set[str], min_cell: int) -> list[dict]:
    """Rows for one later wave: `post_keys` are the respondent keys seen in that wave."""
    followed = np.fromiter((k in post_keys for k in baseline.keys), dtype=bool, count=len(baseline.keys))
    n_f, n_l = int(followed.sum()), int((~followed).sum())
    total = n_f + n_l
    head = {"characteristic": "respondents", "level": "", "stat": "share", "n_followed": n_f, "n_lost": n_l,
            "value_followed": n_f / total if total else None, "value_lost": n_l / total if total else None,
            "note": "" if total else "no baseline respondent has a respondent key", "suppressed": False}
    _suppress_cells([head], min_cell)
    rows = [head]
    for column, kind, order, values in baseline.columns if total else ():
        if kind == "mean":
            f, l = values[followed], values[~followed]
            f, l = f[~np.isnan(f)], l[~np.isnan(l)]
            row = {"characteristic": column, "level": "", "stat": "mean", "n_followed": len(f), "n_lost": len(l),
                   "value_followed": float(f.mean()) if len(f) else None,
                   "value_lost": float(l.mean()) if len(l) else None, "note": "", "suppressed": False}
            if min(len(f), len(l)) >= min_cell:
                res = stats.independent(l, f, level="interval", method="welch_t")
                row.update({k: res.get(k) for k in TEST_FIELDS})
            else:
                row.update(suppressed=True, value_followed=None, value_lost=None,
                           note="fewer than the minimum cell in a group")
            _suppress_cells([row], min_cell)
            rows.append(row)
            continue
        answered = values != ""
        f, l = values[followed & answered], values[~followed & answered]
        summary = {"characteristic": column, "level": "", "stat": "", "n_followed": len(f), "n_lost": len(l),
                   "value_followed": None, "value_lost": None, "note": "", "suppressed": False}
        levels = _ordered(set(f) | set(l), order)
        if len(levels) >= 2 and min(len(f), len(l)) >= min_cell:
            summary.update(_categorical_test(pd.Series(l, dtype=object), pd.Series(f, dtype=object)))
        elif len(levels) < 2:
            summary["note"] = "one level only: nothing to test"
        else:
            summary.update(suppressed=True, note="fewer than the minimum cell in a group")
        _suppress_cells([summary], min_cell)
        level_rows = []
        for lv in levels:
            a, b = int(np.sum(f == lv)), int(np.sum(l == lv))
            level_rows.append({"characteristic": column, "level": lv, "stat": "share", "n_followed": a, "n_lost": b,
                               "value_followed": a / len(f) if len(f) else None,
                               "value_lost": b / len(l) if len(l) else None, "note": "", "suppressed": False})
        _suppress_cells(level_rows, min_cell)
        rows.append(summary)
        rows.extend(level_rows)
    for row in rows:
        row["n_unkeyed"] = baseline.n_unkeyed
    return rows


def attrition_table(frames_by_instrument: dict[str, dict[str, pd.DataFrame]], books: dict[str, Codebook],
                    config: Config) -> pd.DataFrame:
    """Every instrument with a panel (a population survey repeated over waves), every later wave against
    the first (the baseline, as in outcomes.csv)."""
    rows: list[dict] = []
    for instrument, frames in sorted(frames_by_instrument.items()):
        book = books[instrument]
        waves = [w.id for w in config.waves if w.id in frames]
        if not book.population or len(waves) < 2:
            continue
        baseline = Baseline(frames[waves[0]], book, config)
        for post in waves[1:]:
            post_keys = set(frames[post]["respondent_key"].fillna("").astype(str)) - {""}
            for row in compare(baseline, post_keys, config.thresholds.min_cell):
                rows.append({"instrument": instrument, "pre_wave": waves[0], "post_wave": post, **row})
    table = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("n_followed", "n_lost", "n_unkeyed"):
        table[col] = table[col].astype("Int64")
    return table[COLUMNS]
