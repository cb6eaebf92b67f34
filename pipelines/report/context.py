"""What the report is built from (`ReportContext`) and the one place its tables are made safe to show.

`prepare()` gives every table its documented columns (docs/architecture.md), canonical types, only the
waves up to the quarter, labels filled from the codebooks where the analysis left them empty, and
suppression enforced a second time: whatever the analysis flagged, a row with n under the minimum cell
loses its numbers here, and service counts of 1..min_cell-1 people are blanked (the vulnerable line's
included). Everything published — HTML, CSV, Excel — reads the prepared tables only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook
from pipelines.config import Config
from pipelines.report.text import column_label, level_label, option_label

TABLE_COLUMNS: dict[str, list[str]] = {
    "estimates": ["wave", "instrument", "indicator", "stat", "level", "group_var", "group", "estimate", "se",
                  "ci_low", "ci_high", "n", "deff", "suppressed", "label_zh", "label_en", "level_label_zh",
                  "level_label_en", "service_line", "question"],
    "outcomes": ["instrument", "indicator", "scope", "group", "pre_wave", "post_wave", "level", "n_pre", "n_post",
                 "n_pairs", "mean_pre", "mean_post", "diff", "diff_ci_low", "diff_ci_high", "test", "statistic",
                 "df", "p_value", "p_adjusted", "adjust_method", "effect_size_name", "effect_size", "es_ci_low",
                 "es_ci_high", "suppressed", "service_line", "label_zh", "label_en"],
    "funnel": ["wave", "instrument", "step", "rule", "rows"],
    "composition": ["wave", "instrument", "variable", "level", "sample_n", "sample_share", "weighted_share",
                    "population_share", "suppressed"],
    "weights": ["wave", "instrument", "n", "sum_weights", "population_total", "deff_kish", "n_effective",
                "weight_min", "weight_max", "iterations", "converged"],
    "services": ["wave", "service_line", "activities", "attendances", "people", "target_activities",
                 "target_attendances", "target_people", "completion_activities", "completion_attendances",
                 "completion_people", "suppressed"],
    "validation": ["wave", "instrument", "expectation", "column", "severity", "success", "unexpected_count",
                   "details"],
    "needs_priority": ["wave", "instrument", "group_var", "group", "rank", "indicator", "option_label_zh",
                       "option_label_en", "estimate", "ci_low", "ci_high", "n", "suppressed"],
    "reliability": ["wave", "instrument", "scale", "label_zh", "label_en", "alpha", "ci_low", "ci_high", "n", "k",
                    "suppressed"],
}
TABLES = tuple(TABLE_COLUMNS)
NUMERIC = {"estimate", "se", "ci_low", "ci_high", "n", "deff", "n_pre", "n_post", "n_pairs", "mean_pre",
           "mean_post", "diff", "diff_ci_low", "diff_ci_high", "statistic", "df", "p_value", "p_adjusted",
           "effect_size", "es_ci_low", "es_ci_high", "step", "rows", "sample_n", "sample_share", "weighted_share",
           "population_share", "sum_weights", "population_total", "deff_kish", "n_effective", "weight_min",
           "weight_max", "iterations", "activities", "attendances", "people", "target_activities",
           "target_attendances", "target_people", "completion_activities", "completion_attendances",
           "completion_people", "unexpected_count", "rank", "alpha", "k"}
BOOLEAN = {"suppressed", "converged", "success"}
ESTIMATE_NUMBERS = ["estimate", "se", "ci_low", "ci_high", "deff"]
OUTCOME_NUMBERS = ["mean_pre", "mean_post", "diff", "diff_ci_low", "diff_ci_high", "statistic", "df", "p_value",
                   "p_adjusted", "effect_size", "es_ci_low", "es_ci_high"]
MEASURES = ("activities", "attendances", "people")


@dataclass
class ReportContext:
    """Everything one quarter's report needs. Any table may be empty: its section then says so."""

    config: Config
    books: dict[str, Codebook]
    quarter: str
    waves: list[str]
    estimates: pd.DataFrame = field(default_factory=pd.DataFrame)
    outcomes: pd.DataFrame = field(default_factory=pd.DataFrame)
    funnel: pd.DataFrame = field(default_factory=pd.DataFrame)
    composition: pd.DataFrame = field(default_factory=pd.DataFrame)
    weights: pd.DataFrame = field(default_factory=pd.DataFrame)
    services: pd.DataFrame = field(default_factory=pd.DataFrame)
    validation: pd.DataFrame = field(default_factory=pd.DataFrame)
    needs_priority: pd.DataFrame = field(default_factory=pd.DataFrame)
    reliability: pd.DataFrame = field(default_factory=pd.DataFrame)  # wave, instrument, scale, alpha, ci, n, k
    free_text: pd.DataFrame = field(default_factory=pd.DataFrame)   # wave, instrument, text (untrusted)
    versions: dict[str, str] = field(default_factory=dict)           # instrument → codebook version

    @property
    def min_cell(self) -> int:
        return self.config.thresholds.min_cell


def _canon(value: Any) -> str:
    """Codes as text: missing → '', 1.0 → '1'."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def map_distinct(series: pd.Series, fn) -> pd.Series:
    """`series.map(fn)` computed once per distinct value: report tables repeat a few thousand distinct
    values over tens of thousands of rows. Missing values (None, NaN, NA) all map through `fn(None)`."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    mapped = np.empty(len(uniques) + 1, dtype=object)
    mapped[:-1] = [fn(u) for u in uniques]
    mapped[-1] = fn(None)
    return pd.Series(mapped[codes], index=series.index, dtype=object)


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "t")
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return False
    return bool(value)


def normalise(name: str, frame: pd.DataFrame | None) -> pd.DataFrame:
    """The table with its documented columns first (extra columns kept after), canonical types."""
    cols = TABLE_COLUMNS[name]
    frame = pd.DataFrame(columns=cols) if frame is None else frame.copy()
    for col in cols:
        if col not in frame.columns:
            frame[col] = np.nan if col in NUMERIC else (False if col in BOOLEAN else "")
    frame = frame[cols + [c for c in frame.columns if c not in cols]].reset_index(drop=True)
    for col in frame.columns:
        if col in NUMERIC:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
        elif col in BOOLEAN:
            frame[col] = map_distinct(frame[col], _bool).astype(bool)
        else:
            frame[col] = map_distinct(frame[col], _canon)
    return frame


def prepare(ctx: ReportContext) -> dict[str, pd.DataFrame]:
    """Every table normalised, filtered to the report's waves, labelled and suppressed."""
    waves = set(ctx.waves)
    out = {name: normalise(name, getattr(ctx, name)) for name in TABLES}
    for name in ("estimates", "funnel", "composition", "weights", "validation", "needs_priority", "reliability"):
        out[name] = out[name][out[name]["wave"].isin(waves)].reset_index(drop=True)
    out["outcomes"] = out["outcomes"][out["outcomes"]["post_wave"].isin(waves) | (out["outcomes"]["post_wave"] == "")]
    out["estimates"] = _estimates(out["estimates"], ctx)
    out["needs_priority"] = _needs(out["needs_priority"], ctx)
    out["outcomes"] = _outcomes(out["outcomes"].reset_index(drop=True), ctx)
    out["composition"] = _composition(out["composition"], ctx.min_cell)
    out["services"] = _services(out["services"], ctx)
    rel = out["reliability"]
    rel["suppressed"] = rel["suppressed"] | (rel["n"].notna() & (rel["n"] < ctx.min_cell))
    rel.loc[rel["suppressed"], ["alpha", "ci_low", "ci_high"]] = np.nan
    return out


def _estimates(est: pd.DataFrame, ctx: ReportContext) -> pd.DataFrame:
    small = est["n"].notna() & (est["n"] < ctx.min_cell)
    est["suppressed"] = est["suppressed"] | small
    est.loc[est["suppressed"], ESTIMATE_NUMBERS] = np.nan
    # labels, lines and question names are looked up once per distinct key (a few thousand), not per row
    codes, keys = _distinct_rows(est, ["instrument", "indicator"])
    questions = [_question(ctx.books[inst], ind) if inst in ctx.books else None for inst, ind in keys]
    lcodes, lkeys = _distinct_rows(est, ["instrument", "indicator", "level", "stat"])
    for lang in ("zh", "en"):
        names = [column_label(ctx.books.get(inst), ind, lang) for inst, ind in keys]
        _fill_empty(est, f"label_{lang}", names, codes)
        levels = [level_label(ctx.books.get(inst), ind, level, lang) if stat == "proportion" else ""
                  for inst, ind, level, stat in lkeys]
        _fill_empty(est, f"level_label_{lang}", levels, lcodes)
    _fill_empty(est, "service_line", [q.service_line if q is not None else "" for q in questions], codes)
    _fill_empty(est, "question", [q.name if q is not None else "" for q in questions], codes)
    return est


def _distinct_rows(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, list[tuple]]:
    """Each row's position among the distinct value tuples of `columns`, and those tuples: the columns'
    factorized codes combined as integers (no tuple per row is made)."""
    combined = np.zeros(len(frame), dtype=np.int64)
    for col in columns:
        codes, uniques = pd.factorize(frame[col])
        combined = pd.factorize(combined * (len(uniques) + 1) + codes)[0]   # (renumbered: stays small)
    first = np.unique(combined, return_index=True)[1]     # the first row of each distinct tuple, by code
    return combined, list(zip(*(frame[col].to_numpy()[first] for col in columns)))


def _fill_empty(frame: pd.DataFrame, column: str, per_key: list, codes: np.ndarray) -> None:
    """`frame[column]`'s empty cells filled with `per_key[code]` of their row."""
    values = np.empty(len(per_key), dtype=object)
    values[:] = per_key
    fill = pd.Series(values[codes], index=frame.index, dtype=object)
    frame[column] = frame[column].where(frame[column] != "", fill)


def _question(book: Codebook, column: str):
    if column in book:
        return book[column]
    base = column.rsplit("__", 1)[0]
    if base in book:
        return book[base]
    for suffix in ("_correct", "_count"):
        if column.endswith(suffix) and column[: -len(suffix)] in book:
            return book[column[: -len(suffix)]]
    for scale in book.scales.values():
        if column.startswith(scale.id + "_") and scale.items:
            return book[scale.items[0]]
    return None


def _needs(needs: pd.DataFrame, ctx: ReportContext) -> pd.DataFrame:
    small = needs["n"].notna() & (needs["n"] < ctx.min_cell)
    needs["suppressed"] = needs["suppressed"] | small
    needs.loc[needs["suppressed"], ["estimate", "ci_low", "ci_high"]] = np.nan
    for lang in ("zh", "en"):
        column = f"option_label_{lang}"
        missing = needs[column] == ""
        if missing.any():   # labels the analysis left empty, from the codebooks
            needs.loc[missing, column] = [option_label(ctx.books.get(inst), ind, lang) for inst, ind in
                                          zip(needs.loc[missing, "instrument"], needs.loc[missing, "indicator"])]
    return needs


def _outcomes(out: pd.DataFrame, ctx: ReportContext) -> pd.DataFrame:
    m = ctx.min_cell
    small = ((out["scope"] == "panel") & out["n_pairs"].notna() & (out["n_pairs"] < m)) | \
        (out["n_pre"].notna() & (out["n_pre"] < m)) | (out["n_post"].notna() & (out["n_post"] < m))
    out["suppressed"] = out["suppressed"] | small
    out.loc[out["suppressed"], OUTCOME_NUMBERS] = np.nan
    lines = {ind: line.id for line in ctx.config.service_lines for ind in line.indicators}
    for i, row in out.iterrows():
        book = ctx.books.get(row["instrument"])
        for lang in ("zh", "en"):
            if not row[f"label_{lang}"]:
                out.at[i, f"label_{lang}"] = column_label(book, row["indicator"], lang)
        if not row["service_line"]:
            q = _question(book, row["indicator"]) if book is not None else None
            out.at[i, "service_line"] = (q.service_line if q is not None else "") or lines.get(row["indicator"], "")
    return out


def _composition(comp: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    small = comp["sample_n"].notna() & (comp["sample_n"] > 0) & (comp["sample_n"] < min_cell)
    comp["suppressed"] = comp["suppressed"] | small
    comp.loc[comp["suppressed"], ["sample_share", "weighted_share"]] = np.nan
    return comp


def _services(svc: pd.DataFrame, ctx: ReportContext) -> pd.DataFrame:
    """Quarter rows as given plus `cumulative` rows (summed over the report's waves when absent), with
    targets from the configuration and completion; then counts of 1..min_cell-1 people blanked."""
    lines = {line.id: line for line in ctx.config.service_lines}
    quarterly = svc[svc["wave"].isin(ctx.waves)]
    cumulative = svc[svc["wave"] == "cumulative"]
    if cumulative.empty and not quarterly.empty:
        # activities and attendances add up over quarters; unique people do not (someone served in two
        # quarters would count twice), so without the analysis's own cumulative rows they stay unknown
        sums = quarterly.groupby("service_line", sort=False)[["activities", "attendances"]].sum(min_count=1)
        sums = sums.reset_index().assign(wave="cumulative", people=np.nan)
        cumulative = normalise("services", sums)
    svc = pd.concat([quarterly, cumulative], ignore_index=True) if not cumulative.empty else quarterly.copy()
    order = {lid: i for i, lid in enumerate(lines)}
    wave_order = {w: i for i, w in enumerate(ctx.waves)} | {"cumulative": len(ctx.waves)}
    svc = svc.assign(_w=svc["wave"].map(wave_order).fillna(99), _l=svc["service_line"].map(order).fillna(99))
    svc = svc.sort_values(["_w", "_l", "service_line"], kind="stable").drop(columns=["_w", "_l"])
    svc = svc.reset_index(drop=True)
    for m in MEASURES:
        target = svc["service_line"].map(lambda lid: lines[lid].outputs.get(m) if lid in lines else np.nan)
        svc[f"target_{m}"] = svc[f"target_{m}"].fillna(pd.to_numeric(target, errors="coerce"))
        is_cum = svc["wave"] == "cumulative"
        completion = svc[m] / svc[f"target_{m}"].replace(0, np.nan)
        svc.loc[is_cum, f"completion_{m}"] = svc.loc[is_cum, f"completion_{m}"].fillna(completion[is_cum])
    vulnerable = svc["service_line"].map(lambda lid: bool(lines[lid].vulnerable) if lid in lines else False)
    for m in ("attendances", "people"):
        small = svc[m].notna() & (svc[m] > 0) & (svc[m] < ctx.min_cell)
        if m == "people":
            # a vulnerable line's target is the whole group (e.g. the 18 children in difficulty): the people
            # *not* reached are a count of that group too, so they may not be under min_cell either
            gap = svc[f"target_{m}"] - svc[m]
            small = small | (vulnerable.astype(bool) & gap.notna() & (gap > 0) & (gap < ctx.min_cell))
        svc.loc[small, [m, f"completion_{m}"]] = np.nan
        svc["suppressed"] = svc["suppressed"] | small
    return svc


def free_text_quotes(ctx: ReportContext, limit: int = 8) -> list[dict[str, str]]:
    """A handful of respondents' suggestions from the report's waves, newest wave first, deterministic."""
    frame = ctx.free_text
    if frame is None or frame.empty or "text" not in frame.columns:
        return []
    order = {w: i for i, w in enumerate(ctx.waves)}
    rows = []
    for rec in frame.to_dict("records"):
        text = _canon(rec.get("text"))
        wave = _canon(rec.get("wave"))
        if text and (not wave or wave in order):
            rows.append((-order.get(wave, -1), _canon(rec.get("instrument")), text[:300], wave))
    seen, queues = set(), {}
    for _, inst, text, wave in sorted(rows):
        if text not in seen:
            seen.add(text)
            queues.setdefault(inst, []).append({"text": text, "instrument": inst, "wave": wave})
    out = []   # take the instruments in turn, so parents, children and residents are all heard
    while len(out) < limit and any(queues.values()):
        for inst in sorted(queues):
            if queues[inst] and len(out) < limit:
                out.append(queues[inst].pop(0))
    return out
