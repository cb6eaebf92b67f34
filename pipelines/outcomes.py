"""Pre/post outcome statistics (CONTRACT §4 `outcomes.csv`): panel, cross-section and activity.

Every outcome indicator is compared between the baseline and each later wave (and the latest wave against
the one before it), three ways: the same respondents linked by respondent_key (panel, paired tests), new
respondents against the baseline sample (cross-section, independent tests), and group activities' pre/post
tests. Multiplicity is explicit: Holm within each service line's family (one family per scope and
comparison) goes to `p_adjusted`, and Benjamini–Hochberg across every test in the table to `p_bh`.

`reliable_change_table` adds, per scale and panel comparison with the baseline, the shares of individuals
reliably improved / unchanged / worse (Jacobson–Truax); it is a table of its own (tables/reliable_change.csv)
because outcomes.csv has CONTRACT §4's columns, one row per test.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines import stats
from pipelines.codebook import Codebook
from pipelines.config import Config
from pipelines.indicators import Outcome, outcomes_for

COLUMNS = ["instrument", "indicator", "scope", "group", "pre_wave", "post_wave", "level", "n_pre", "n_post",
           "n_pairs", "mean_pre", "mean_post", "diff", "diff_ci_low", "diff_ci_high", "test", "statistic", "df",
           "p_value", "p_adjusted", "adjust_method", "effect_size_name", "effect_size", "es_ci_low", "es_ci_high",
           "suppressed"]
EXTRA = ["service_line", "indicator_id", "family", "p_bh", "label_zh", "label_en"]
RESULT_FIELDS = ["n_pre", "n_post", "n_pairs", "mean_pre", "mean_post", "diff", "diff_ci_low", "diff_ci_high", "test",
                 "statistic", "df", "p_value", "effect_size_name", "effect_size", "es_ci_low", "es_ci_high"]
HOLM = "holm"
HOLM_NAME = "Holm (family: service line × scope × comparison)"


def comparisons(waves: list[str]) -> list[tuple[str, str]]:
    """Each later wave against the baseline, and the latest against the one before it."""
    if len(waves) < 2:
        return []
    pairs = [(waves[0], w) for w in waves[1:]]
    if len(waves) > 2:
        pairs.append((waves[-2], waves[-1]))
    return pairs


def _row(outcome: Outcome, scope: str, group: str, pre: str, post: str, result: dict | None,
         min_cell: int, n_pre: int, n_post: int, n_pairs) -> dict:
    row = {"instrument": outcome.instrument, "indicator": outcome.column, "scope": scope, "group": group,
           "pre_wave": pre, "post_wave": post, "level": outcome.level, "service_line": outcome.service_line,
           "indicator_id": outcome.indicator, "label_zh": outcome.label_zh, "label_en": outcome.label_en}
    if result is not None:
        row.update({k: result.get(k) for k in RESULT_FIELDS})
    row.setdefault("n_pre", n_pre)
    row.setdefault("n_post", n_post)
    # a panel or activity comparison with no linked pair has n_pairs 0, not empty (no test ran, so the
    # result does not carry it)
    row["n_pairs"] = None if scope == "cross_section" else int(n_pairs or 0)
    small = (n_pairs if scope != "cross_section" else min(n_pre, n_post)) or 0
    row["suppressed"] = bool(small < min_cell or result is None)
    if row["suppressed"]:
        for k in RESULT_FIELDS[3:]:
            if k not in ("test",):
                row[k] = None
    return row


def _safe(fn, *args, **kwargs) -> dict | None:
    try:
        return fn(*args, **kwargs)
    except (ValueError, ZeroDivisionError, FloatingPointError):
        return None


def panel_and_cross(frames: dict[str, pd.DataFrame], book: Codebook, config: Config) -> list[dict]:
    waves = [w.id for w in config.waves if w.id in frames]
    min_cell = config.thresholds.min_cell
    pairs = comparisons(waves)
    # who is linked, and who is new, depends on the two waves only: found once per comparison, not once
    # per outcome; each outcome's values are read once per wave
    panels = {(pre, post): _pair_positions(frames[pre]["respondent_key"], frames[post]["respondent_key"])
              for pre, post in pairs}
    fresh = {(pre, post): ~frames[post]["respondent_key"].isin(set(frames[pre]["respondent_key"]) - {""})
             .to_numpy(dtype=bool) for pre, post in pairs}
    rows = []
    for outcome in outcomes_for(book, config):
        values = _WaveValues(outcome, frames)
        for pre_wave, post_wave in pairs:
            pre_f, post_f = frames[pre_wave], frames[post_wave]
            if outcome.column not in pre_f or outcome.column not in post_f:
                continue
            pre_v, post_v = values[pre_wave], values[post_wave]
            linked_pre, linked_post = _linked(pre_v, post_v, panels[(pre_wave, post_wave)])
            n_pairs = int((~np.isnan(linked_pre) & ~np.isnan(linked_post)).sum())
            result = _safe(stats.paired, linked_pre, linked_post, level=outcome.level) if n_pairs >= 2 else None
            rows.append(_row(outcome, "panel", "", pre_wave, post_wave, result, min_cell,
                             int((~np.isnan(linked_pre)).sum()), int((~np.isnan(linked_post)).sum()), n_pairs))
            a = pre_v[~np.isnan(pre_v)]
            b = post_v[fresh[(pre_wave, post_wave)]]
            b = b[~np.isnan(b)]
            result = _safe(stats.independent, a, b, level=outcome.level) if min(len(a), len(b)) >= 2 else None
            rows.append(_row(outcome, "cross_section", "", pre_wave, post_wave, result, min_cell, len(a), len(b), None))
    return rows


class _WaveValues(dict):
    """An outcome's values in each wave as a float array (NaN = missing), read from the frame when first
    asked for: a wave compared several times (the baseline) is converted once."""

    def __init__(self, outcome: Outcome, frames: dict[str, pd.DataFrame]):
        super().__init__()
        self.outcome, self.frames = outcome, frames

    def __missing__(self, wave: str) -> np.ndarray:
        values = self[wave] = _floats(self.outcome.values(self.frames[wave]))
        return values


def _floats(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype=float, na_value=np.nan)


def _linked(pre_v: np.ndarray, post_v: np.ndarray, positions: tuple[np.ndarray, np.ndarray]) -> tuple:
    """The (pre, post) values of the linked respondents (`_pair_positions`), NaN where one is missing."""
    i, j = positions
    return pre_v[i], post_v[j]


def _link(pre_f, post_f, pre_v, post_v) -> pd.DataFrame:
    """The respondents keyed in both frames (first response per key) with their pre and post values."""
    pre, post = _linked(_floats(pre_v), _floats(post_v),
                        _pair_positions(pre_f["respondent_key"], post_f["respondent_key"]))
    return pd.DataFrame({"pre": pre, "post": post})


def activity_outcomes(frame: pd.DataFrame, book: Codebook, config: Config, wave: str) -> list[dict]:
    """Each group activity's pre/post test: participants linked by respondent_key within the wave."""
    phase = book.by_role("phase")
    activity = next((q for q in book.answer_questions if q.name == "activity_id"), None)
    if phase is None or activity is None or not len(frame):
        return []
    rows = []
    labels = {c.code: c.label_zh for c in activity.choices}
    for code in sorted(frame[activity.name].dropna().unique()):
        group = frame[frame[activity.name] == code]
        pre_f, post_f = group[group[phase.name] == 1], group[group[phase.name] == 2]
        for outcome in outcomes_for(book, config):
            linked = _link(pre_f, post_f, outcome.values(pre_f), outcome.values(post_f))
            n_pairs = int(linked.dropna().shape[0])
            result = _safe(stats.paired, linked["pre"], linked["post"], level=outcome.level) if n_pairs >= 2 else None
            rows.append(_row(outcome, "activity", labels.get(int(code), str(code)), wave, wave, result,
                             config.thresholds.min_cell, len(pre_f), len(post_f), n_pairs))
    return rows


def adjust(table: pd.DataFrame) -> pd.DataFrame:
    """Holm within families (→ p_adjusted), Benjamini–Hochberg across all tests (→ p_bh)."""
    table = table.copy()
    table["family"] = (table["service_line"].astype(str) + "|" + table["scope"] + "|" + table["group"].astype(str)
                       + "|" + table["pre_wave"] + "→" + table["post_wave"])
    table["p_adjusted"] = np.nan
    table["p_bh"] = np.nan
    tested = table["p_value"].notna() & ~table["suppressed"].astype(bool)
    for _, idx in table[tested].groupby("family").groups.items():
        table.loc[idx, "p_adjusted"] = stats.adjust(table.loc[idx, "p_value"].astype(float).to_numpy(), HOLM)
    if tested.any():
        table.loc[tested, "p_bh"] = stats.adjust(table.loc[tested, "p_value"].astype(float).to_numpy(), "fdr_bh")
    table["adjust_method"] = np.where(tested, HOLM_NAME, "")
    return table


def outcome_table(frames_by_instrument: dict[str, dict[str, pd.DataFrame]], books: dict[str, Codebook],
                  config: Config) -> pd.DataFrame:
    rows: list[dict] = []
    for instrument, frames in sorted(frames_by_instrument.items()):
        book = books[instrument]
        if book.population:
            rows.extend(panel_and_cross(frames, book, config))
        else:
            for wave, frame in frames.items():
                rows.extend(activity_outcomes(frame, book, config, wave))
    if not rows:
        return pd.DataFrame(columns=COLUMNS + EXTRA)
    table = adjust(pd.DataFrame(rows))
    for col in COLUMNS + EXTRA:
        if col not in table:
            table[col] = None
    return table[COLUMNS + EXTRA].sort_values(["instrument", "scope", "pre_wave", "post_wave", "group", "indicator"],
                                              kind="stable").reset_index(drop=True)


RELIABLE_CHANGE_COLUMNS = ["instrument", "indicator", "pre_wave", "post_wave", "n", "sd_baseline", "se_diff",
                           "reliability", "improved", "unchanged", "worse", "note", "suppressed", "service_line",
                           "label_zh", "label_en"]


def reliable_change_table(frames_by_instrument: dict[str, dict[str, pd.DataFrame]], books: dict[str, Codebook],
                          config: Config, reliability: pd.DataFrame) -> pd.DataFrame:
    """Jacobson–Truax reliable change for each scale outcome, baseline → each later wave, panel pairs.

    The yardstick is fixed at baseline for every comparison: the SD of the scale score over all baseline
    respondents (unweighted, ddof 1 — the spread of the population the change is judged against, not of
    the panel survivors) and the scale's Cronbach α at baseline (`reliability`, from analyze). A change is
    reliable when |post − pre| > 1.96 · √2 · SD · √(1 − α); every scale here is scored so that higher is
    better. Shares are over the complete pairs; under min_cell pairs, or without a usable α (missing, or
    outside [0, 1)), the row is kept with its reason in `note` and no shares.
    """
    min_cell = config.thresholds.min_cell
    alpha = {}
    if reliability is not None and len(reliability):
        alpha = {(r["wave"], r["instrument"], r["scale"]): r["alpha"] for r in reliability.to_dict("records")}
    rows = []
    for instrument, frames in sorted(frames_by_instrument.items()):
        book = books[instrument]
        waves = [w.id for w in config.waves if w.id in frames]
        if not book.population or len(waves) < 2:
            continue
        scales = {s.score_column: s for s in book.scales.values()}
        base_wave, base = waves[0], frames[waves[0]]
        # the panel pairs of each later wave, found once (the same linkage as _link: first response per key)
        pairs = {w: _pair_positions(base["respondent_key"], frames[w]["respondent_key"]) for w in waves[1:]}
        for outcome in outcomes_for(book, config):
            scale = scales.get(outcome.column)
            if scale is None or outcome.column not in base:
                continue
            base_all = outcome.values(base).to_numpy(dtype=float, na_value=np.nan)
            base_values = base_all[~np.isnan(base_all)]
            sd = float(np.std(base_values, ddof=1)) if len(base_values) > 1 else float("nan")
            r = alpha.get((base_wave, instrument, scale.id), float("nan"))
            r = float(r) if r is not None and pd.notna(r) else float("nan")
            for post_wave in waves[1:]:
                post = frames[post_wave]
                if outcome.column not in post:
                    continue
                i, j = pairs[post_wave]
                pre_v = base_all[i]
                post_v = outcome.values(post).to_numpy(dtype=float, na_value=np.nan)[j]
                complete = ~np.isnan(pre_v) & ~np.isnan(post_v)
                pre_v, post_v = pre_v[complete], post_v[complete]
                row = {"instrument": instrument, "indicator": outcome.column, "pre_wave": base_wave,
                       "post_wave": post_wave, "n": int(complete.sum()), "sd_baseline": sd, "se_diff": None,
                       "reliability": r, "improved": None, "unchanged": None, "worse": None, "note": "",
                       "suppressed": False, "service_line": outcome.service_line, "label_zh": outcome.label_zh,
                       "label_en": outcome.label_en}
                if not (0 <= r < 1):
                    row["note"] = "no usable baseline reliability (Cronbach's alpha missing or outside [0, 1))"
                elif not sd > 0:
                    row["note"] = "no spread of the score at baseline"
                else:
                    res = stats.reliable_change(pre_v, post_v, sd, r)
                    row.update(se_diff=res["se_diff"], improved=res["improved"], unchanged=res["unchanged"],
                               worse=res["worse"])
                if row["n"] < min_cell:
                    row.update(suppressed=True, improved=None, unchanged=None, worse=None,
                               note=row["note"] or "fewer pairs than the minimum cell")
                rows.append(row)
    return pd.DataFrame(rows, columns=RELIABLE_CHANGE_COLUMNS)


def _pair_positions(pre_keys: pd.Series, post_keys: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (pre, post) of the respondents keyed in both waves, first response per key — the
    pairs `_link` forms, as positions so many outcomes can reuse them."""
    def first(keys: pd.Series) -> pd.Series:
        k = keys.fillna("").astype(str).reset_index(drop=True)
        k = k[k != ""]
        k = k[~k.duplicated()]
        return pd.Series(k.index.to_numpy(), index=k.to_numpy())

    pre, post = first(pre_keys), first(post_keys)
    common = pre.index.intersection(post.index, sort=False)
    return pre.loc[common].to_numpy(dtype=int), post.loc[common].to_numpy(dtype=int)
