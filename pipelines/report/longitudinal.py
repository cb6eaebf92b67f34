"""The report's longitudinal tables: panel attrition, reliable change and the quarterly trend models.

They travel in a `LongitudinalContext` (a ReportContext with three more tables) so the report builder and
the prepared tables of CONTRACT §4 stay as they are: `publish.py` builds this context, writes the tables
with `write_tables` and the report's sections read them through `tables(doc)`. A plain ReportContext (the
report tests, notebooks) simply has no such tables and their blocks stay away.

Suppression is enforced a second time here, as `context.prepare` does for the other tables, whatever the
analysis flagged: counts of 1..min_cell-1 and the shares and tests resting on them are blanked, and a trend
model that did not converge keeps no coefficient at all — the report says it did not converge.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipelines.attrition import COLUMNS as ATTRITION_COLUMNS
from pipelines.outcomes import RELIABLE_CHANGE_COLUMNS
from pipelines.report.context import ReportContext
from pipelines.report.document import Doc, Table, records
from pipelines.report.tables import csv_bytes, write_atomic
from pipelines.report.text import column_label, count, level_label, num, number, pct, short, value
from pipelines.trends import TREND_COLUMNS

COLUMNS = {"attrition": ATTRITION_COLUMNS, "reliable_change": RELIABLE_CHANGE_COLUMNS, "trends": TREND_COLUMNS}
INTEGERS = {"n_followed", "n_lost", "n_unkeyed", "n", "n_wave", "n_baseline", "n_obs", "n_respondents", "n_linked"}
BOOLEANS = {"suppressed", "converged"}
TEXT = {"instrument", "indicator", "pre_wave", "post_wave", "characteristic", "level", "stat", "test",
        "effect_size_name", "note", "service_line", "label_zh", "label_en", "model", "link", "estimate_name",
        "baseline_wave", "wave"}
ATTRITION_TEST = ["test", "statistic", "df", "p_value", "effect_size_name", "effect_size"]
TREND_NUMBERS = ["estimate", "se", "ci_low", "ci_high", "p_value"]
CHARACTERISTIC_VARS = {"compound": "var.compound", "age_band": "var.age_band", "child_age_band": "var.child_age_band",
                       "hukou_group": "var.hukou", "gender": "var.gender"}


@dataclass
class LongitudinalContext(ReportContext):
    attrition: pd.DataFrame = field(default_factory=pd.DataFrame)         # pipelines.attrition.COLUMNS
    reliable_change: pd.DataFrame = field(default_factory=pd.DataFrame)   # outcomes.RELIABLE_CHANGE_COLUMNS
    trends: pd.DataFrame = field(default_factory=pd.DataFrame)            # trends.TREND_COLUMNS


def _normalise(name: str, frame: pd.DataFrame | None) -> pd.DataFrame:
    cols = COLUMNS[name]
    frame = pd.DataFrame(columns=cols) if frame is None else frame.copy()
    for col in cols:
        if col not in frame.columns:
            frame[col] = None
    frame = frame[cols].reset_index(drop=True)
    for col in cols:
        if col in BOOLEANS:
            frame[col] = frame[col].map(lambda v: str(v).strip().lower() in ("true", "1") if isinstance(v, str)
                                        else bool(v) if v is not None and not pd.isna(v) else False).astype(bool)
        elif col in TEXT:
            frame[col] = frame[col].map(lambda v: "" if v is None or (not isinstance(v, str) and pd.isna(v))
                                        else str(v)).astype(object)
        elif col in INTEGERS:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").round().astype("Int64")
        else:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    return frame


def prepare(ctx: ReportContext) -> dict[str, pd.DataFrame]:
    """The three tables with their columns in order, limited to the report's waves, suppression enforced."""
    waves, m = set(ctx.waves), ctx.min_cell
    out = {name: _normalise(name, getattr(ctx, name, None)) for name in COLUMNS}
    att = out["attrition"]
    att = att[att["post_wave"].isin(waves)].reset_index(drop=True)
    for group in ("followed", "lost"):
        small = att[f"n_{group}"].notna() & (att[f"n_{group}"] > 0) & (att[f"n_{group}"] < m)
        att.loc[small, f"n_{group}"] = pd.NA
        att.loc[small, f"value_{group}"] = np.nan
        att.loc[small, "suppressed"] = True
        # a test needs both groups at the minimum cell: a summary row with a small (or blanked) group loses it
        thin = (att["level"] == "") & (att["characteristic"] != "respondents") & \
            (att[f"n_{group}"].isna() | (att[f"n_{group}"] < m))
        att.loc[thin, ["statistic", "df", "p_value", "effect_size"]] = np.nan
        att.loc[thin, "suppressed"] = True
    out["attrition"] = att
    rc = out["reliable_change"]
    rc = rc[rc["post_wave"].isin(waves)].reset_index(drop=True)
    small = rc["n"].isna() | (rc["n"] < m)
    rc.loc[small, ["improved", "unchanged", "worse"]] = np.nan
    rc.loc[small, "suppressed"] = True
    out["reliable_change"] = rc
    tr = out["trends"]
    tr = tr[tr["wave"].isin(waves) | (tr["wave"] == "")].reset_index(drop=True)
    tr.loc[~tr["converged"], TREND_NUMBERS] = np.nan      # never a coefficient of a model that did not converge
    small = (tr["n_wave"].notna() & (tr["n_wave"] < m)) | (tr["n_baseline"].notna() & (tr["n_baseline"] < m))
    tr.loc[small, TREND_NUMBERS] = np.nan
    tr.loc[small, "suppressed"] = True
    out["trends"] = tr
    return out


def has_tables(ctx: ReportContext) -> bool:
    return isinstance(ctx, LongitudinalContext)


def write_tables(folder, ctx: ReportContext) -> list:
    """tables/attrition.csv, reliable_change.csv and trends.csv (UTF-8 with BOM, formulas defused)."""
    prepared = prepare(ctx)
    return [write_atomic(folder / f"{name}.csv", csv_bytes(name, prepared[name])) for name in COLUMNS]


def tables(doc: Doc) -> dict[str, pd.DataFrame] | None:
    """The prepared tables for this document (computed once per language), or None without them."""
    if not has_tables(doc.ctx):
        return None
    if not hasattr(doc, "_longitudinal"):
        doc._longitudinal = prepared(doc.ctx, doc.tables)
    return doc._longitudinal


def prepared(ctx: ReportContext, tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The three tables as `prepare(ctx)` gives them: those among the report's prepared `tables` (publishing
    prepares them once for both languages and the workbook: `builder.publish_quarter`), else made now."""
    given = {name: tables[name] for name in COLUMNS if name in tables}
    return given if len(given) == len(COLUMNS) else prepare(ctx)


def _report_wave(doc: Doc, frame: pd.DataFrame, column: str) -> str | None:
    """The report's quarter if the table has it, else the latest wave it has up to the quarter."""
    waves = [w for w in frame[column].unique() if w]
    if not waves:
        return None
    if doc.quarter in waves:
        return doc.quarter
    rank = doc.wave_rank(doc.quarter)
    earlier = [w for w in waves if doc.wave_rank(w) <= rank]
    return max(earlier or waves, key=doc.wave_rank)


def _indicator_label(doc: Doc, r: dict) -> str:
    return short(str(r.get(f"label_{doc.lang}") or column_label(doc.book(r["instrument"]), r["indicator"], doc.lang)))


def _p_text(p) -> str:
    v = number(p)
    return "–" if v is None else ("<0.001" if v < 0.001 else num(v, 3))


# ---------------------------------------------------------------- reliable change (outcomes section)
def reliable_change(doc: Doc) -> list[dict]:
    T, t = doc.T, tables(doc)
    if t is None:
        return []
    rc = t["reliable_change"]
    blocks = [doc.sub(T("reliable_change.heading"))]
    wave = _report_wave(doc, rc, "post_wave") if not rc.empty else None
    if wave is None:
        return blocks + [doc.para(T("reliable_change.intro_none")), doc.no_data()]
    rows_now = rc[rc["post_wave"] == wave]
    blocks.append(doc.para(T("reliable_change.intro", wave=doc.wave(wave, True))))
    order = {k: i for i, (k, _) in enumerate(doc.books)}
    recs = sorted(records(rows_now), key=lambda r: (order.get(r["instrument"], 99), r["indicator"]))
    shown = [r for r in recs if not r["suppressed"] and number(r["improved"]) is not None]
    if shown:
        best = max(shown, key=lambda r: (r["improved"], -r["worse"]))
        more = sum(r["improved"] > r["worse"] for r in shown)
        blocks.append(doc.para(T("reliable_change.takeaway", wave=doc.wave(wave, True), label=_indicator_label(doc, best),
                                 improved=pct(best["improved"]), worse=pct(best["worse"]), n_more=more,
                                 total=len(shown))))
    rows = []
    for r in recs:
        share = str(r["indicator"]) in doc.share_columns
        threshold = number(r["se_diff"])
        if r["suppressed"] or number(r["improved"]) is None:
            reason = doc.sup if r["suppressed"] else T("reliable_change.no_alpha")
            rows.append([_indicator_label(doc, r), doc.inst(r["instrument"]), doc.n_text(r["n"], r["suppressed"]),
                         num(r["reliability"]), "–", reason, "", ""])
            continue
        rows.append([_indicator_label(doc, r), doc.inst(r["instrument"]), doc.n_text(r["n"]), num(r["reliability"]),
                     "±" + value(1.96 * threshold, share) if threshold is not None else "–",
                     pct(r["improved"], 1), pct(r["unchanged"], 1), pct(r["worse"], 1)])
    blocks.append(doc.table(Table(T("reliable_change.caption", wave=doc.wave(wave, True)),
                                  [T("line.col_indicator"), T("line.col_instrument"), T("reliable_change.col_pairs"),
                                   T("reliable_change.col_alpha"), T("reliable_change.col_threshold"),
                                   T("reliable_change.col_improved"), T("reliable_change.col_unchanged"),
                                   T("reliable_change.col_worse")], rows,
                                  [False, False, True, True, True, True, True, True])))
    return blocks


# ---------------------------------------------------------------- trend models (outcomes section)
def _model_name(doc: Doc, r: dict) -> str:
    return doc.T("trends.ordinal" if r["model"] == "ordinal_logit" else "trends.mixed")


def _estimate_text(doc: Doc, r: dict) -> str:
    share = r["model"] != "ordinal_logit" and str(r["indicator"]) in doc.share_columns
    est = number(r["estimate"])
    if est is None:
        return doc.sup if r["suppressed"] else "–"
    sign = "+" if est > 0 else ""
    return f"{sign}{value(est, share)} ({value(r['ci_low'], share)} – {value(r['ci_high'], share)})"


def not_converged(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[~frame["converged"]].drop_duplicates(["instrument", "indicator"])


def trend_models(doc: Doc) -> list[dict]:
    T, t = doc.T, tables(doc)
    if t is None:
        return []
    tr = t["trends"]
    blocks = [doc.sub(T("trends.heading")), doc.para(T("trends.intro"))]
    if tr.empty:
        return blocks + [doc.no_data()]
    models = tr.drop_duplicates(["instrument", "indicator"])
    failed = not_converged(tr)
    blocks.append(doc.para(T("trends.convergence", converged=len(models) - len(failed), total=len(models))))
    wave = _report_wave(doc, tr[tr["converged"]], "wave") if tr["converged"].any() else doc.quarter
    order = {k: i for i, (k, _) in enumerate(doc.books)}
    rows, up, down = [], 0, 0
    for r in sorted(records(models), key=lambda r: (order.get(r["instrument"], 99), r["model"], r["indicator"])):
        label, inst = _indicator_label(doc, r), doc.inst(r["instrument"])
        n = f"{count(r['n_obs'])} / {count(r['n_respondents'])}"
        if not r["converged"]:
            rows.append([label, inst, _model_name(doc, r), T("trends.not_converged"), "", n])
            continue
        at = tr[(tr["instrument"] == r["instrument"]) & (tr["indicator"] == r["indicator"]) & (tr["wave"] == wave)]
        if at.empty:
            rows.append([label, inst, _model_name(doc, r), "–", "", n])
            continue
        w = at.iloc[0].to_dict()
        p, est = number(w["p_value"]), number(w["estimate"])
        if p is not None and est is not None and p < doc.alpha and r["model"] == "mixed_lm_reml":
            up, down = up + (est > 0), down + (est < 0)
        rows.append([label, inst, _model_name(doc, r), _estimate_text(doc, w), "" if w["suppressed"] else _p_text(p), n])
    blocks.append(doc.para(T("trends.takeaway", wave=doc.wave(wave, True), up=up, down=down)))
    blocks.append(doc.table(Table(T("trends.caption", wave=doc.wave(wave, True)),
                                  [T("line.col_indicator"), T("line.col_instrument"), T("trends.col_model"),
                                   T("trends.col_estimate"), T("trends.col_p"), T("trends.col_n")], rows,
                                  [False, False, False, True, True, True])))
    if not failed.empty:
        names = ("、" if doc.lang == "zh" else "; ").join(
            f"{_indicator_label(doc, r)}（{doc.inst(r['instrument'])}）" if doc.lang == "zh" else
            f"{_indicator_label(doc, r)} ({doc.inst(r['instrument'])})" for r in records(failed))
        blocks.append(doc.note(T("trends.not_converged_note", models=names)))
    return blocks


def trend_cell(doc: Doc, instrument: str, indicator: str, wave: str) -> str | None:
    """The model's estimate against the baseline for one wave, as a table cell; None when no model ran."""
    t = tables(doc)
    if t is None:
        return None
    if not hasattr(doc, "_trend_rows"):   # (instrument, indicator) → {wave: row}, built once per document
        doc._trend_rows = {}
        for row in records(t["trends"]):
            doc._trend_rows.setdefault((row["instrument"], row["indicator"]), {})[row["wave"]] = row
    rows = doc._trend_rows.get((instrument, indicator))
    if not rows:
        return None
    first = next(iter(rows.values()))
    if not first["converged"]:
        return doc.T("trends.not_converged_short")
    if wave == first["baseline_wave"]:
        return doc.T("trends.reference")
    r = rows.get(wave)
    if r is None:
        return "–"
    text = _estimate_text(doc, r)
    if number(r["estimate"]) is None:
        return text
    logit = " (logit)" if r["model"] == "ordinal_logit" else ""
    return f"{text}{logit}, p = {_p_text(r['p_value'])}" if doc.lang == "en" else \
        f"{text}{'（logit）' if logit else ''}，p = {_p_text(r['p_value'])}"


# ---------------------------------------------------------------- attrition (methods section)
def _characteristic(doc: Doc, inst: str, column: str) -> str:
    key = CHARACTERISTIC_VARS.get(column)
    if key:
        return doc.T(key)
    return short(column_label(doc.book(inst), column, doc.lang))


def _level(doc: Doc, inst: str, column: str, level: str) -> str:
    if column == "compound":
        return doc.labels.get(f"compound:{level}", level)
    if column == "hukou_group":
        return doc.labels.get(f"hukou:{level}", level)
    return level_label(doc.book(inst), column, level, doc.lang) or level


def attrition(doc: Doc) -> list[dict]:
    T, t = doc.T, tables(doc)
    if t is None:
        return []
    att = t["attrition"]
    wave = _report_wave(doc, att, "post_wave") if not att.empty else None
    if wave is None:
        return [doc.para(T("attrition.none"))]
    att = att[att["post_wave"] == wave]
    unkeyed = int(att["n_unkeyed"].fillna(0).groupby(att["instrument"]).max().sum())
    blocks = [doc.para(T("attrition.intro", wave=doc.wave(wave, True), unkeyed=count(unkeyed)))]
    order = {k: i for i, (k, _) in enumerate(doc.books)}
    rows, differ = [], []
    for inst in sorted(att["instrument"].unique(), key=lambda i: order.get(i, 99)):
        part = att[att["instrument"] == inst]
        for r in records(part[part["level"] == ""]):
            col = r["characteristic"]
            if col == "respondents":
                rows.append([doc.inst(inst), T("attrition.respondents"),
                             f"{doc.n_text(r['n_followed'], pd.isna(r['n_followed']))}（{pct(r['value_followed'])}）"
                             if doc.lang == "zh" else
                             f"{doc.n_text(r['n_followed'], pd.isna(r['n_followed']))} ({pct(r['value_followed'])})",
                             doc.n_text(r["n_lost"], pd.isna(r["n_lost"])), "", ""])
                continue
            name = _characteristic(doc, inst, col)
            test, p = r["test"], number(r["p_value"])
            if r["stat"] == "mean":
                share = col in doc.share_columns
                cells = [doc.sup if number(r[f"value_{g}"]) is None else
                         f"{value(r[f'value_{g}'], share)} (n={count(r[f'n_{g}'])})" for g in ("followed", "lost")]
            else:
                levels = [x for x in records(part[(part["characteristic"] == col) & (part["level"] != "")])
                          if number(x["value_followed"]) is not None and number(x["value_lost"]) is not None]
                if levels:
                    top = max(levels, key=lambda x: abs(x["value_followed"] - x["value_lost"]))
                    lv = _level(doc, inst, col, top["level"])
                    colon = "：" if doc.lang == "zh" else ": "
                    cells = [f"{lv}{colon}{pct(top['value_followed'], 1)}", f"{lv}{colon}{pct(top['value_lost'], 1)}"]
                else:
                    cells = [doc.sup, doc.sup]
            rows.append([doc.inst(inst), name, *cells, test if p is not None else "", _p_text(p) if p is not None else
                         (doc.sup if r["suppressed"] else "–")])
            if p is not None and p < doc.alpha:
                differ.append(f"{doc.inst(inst)}·{name}" if doc.lang == "zh" else f"{doc.inst(inst)}: {name}")
    sep = "、" if doc.lang == "zh" else "; "
    blocks.append(doc.para(T("attrition.takeaway_diff", wave=doc.wave(wave, True), items=sep.join(differ))
                           if differ else T("attrition.takeaway_none", wave=doc.wave(wave, True))))
    blocks.append(doc.table(Table(T("attrition.caption", wave=doc.wave(wave, True)),
                                  [T("line.col_instrument"), T("attrition.col_characteristic"),
                                   T("attrition.col_followed"), T("attrition.col_lost"), T("attrition.col_test"),
                                   T("attrition.col_p")], rows, [False, False, True, True, False, True])))
    blocks.append(doc.note(T("attrition.note")))
    return blocks


def csv_links(doc: Doc) -> list[dict]:
    if not has_tables(doc.ctx):
        return []
    return [{"href": f"tables/{name}.csv", "text": f"{doc.T('table.' + name)} — tables/{name}.csv"} for name in COLUMNS]
