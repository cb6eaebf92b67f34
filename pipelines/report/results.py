"""Outputs, outcomes, satisfaction, data quality and methods, and the appendix."""
from __future__ import annotations

import datetime as dt

import pandas as pd

from pipelines import charts
from pipelines.report import longitudinal
from pipelines.report.context import free_text_quotes
from pipelines.report.document import Doc, Table, is_outcome_suppressed, records
from pipelines.report.text import count, num, number, pct, quarter_dates, short, value

MEASURES = ("activities", "attendances", "people")
ZERO_CENTRED = {"cohen_dz", "cohen_d", "hedges_g", "glass_delta", "rank_biserial", "cliffs_delta"}
CSV_TABLES = ("estimates", "outcomes", "services", "needs_priority", "reliability", "funnel", "composition", "weights",
              "validation")


def expected_share(doc: Doc) -> float | None:
    """The share of the service year elapsed at the end of the quarter (the on-schedule completion)."""
    p = doc.ctx.config.project
    start, end = p.get("service_start"), p.get("service_end")
    _, q_end = quarter_dates(doc.ctx.config, doc.quarter)
    if not (isinstance(start, dt.date) and isinstance(end, dt.date) and q_end):
        return None
    elapsed = (dt.date.fromisoformat(q_end) - start).days + 1
    return max(0.0, min(1.0, elapsed / ((end - start).days + 1)))


def satisfaction_rows(doc: Doc, wave: str) -> list[dict]:
    """Per satisfaction item and instrument: the top-two-box share (the two best-scored options) and n."""
    rows = doc.shares(wave)
    out = []
    for (inst, ind), grp in rows.groupby(["instrument", "indicator"], sort=False):
        book = doc.book(inst)
        if book is None or ind not in book or not book[ind].satisfaction or not book[ind].choices:
            continue
        q = book[ind]
        top = {str(c.code) for c in sorted(q.choices, key=lambda c: c.score)[-2:]}
        recs = records(grp)
        sup = any(charts.is_suppressed(r, doc.min_cell) for r in recs)
        share = None if sup else sum(number(r["estimate"]) or 0 for r in recs if r["level"] in top)
        n = max((number(r["n"]) or 0 for r in recs), default=0)
        out.append({"instrument": inst, "indicator": ind, "service_line": q.service_line, "share": share,
                    "n": n, "suppressed": sup, "label": doc.label(recs[0]), "rows": grp})
    return out


# ---------------------------------------------------------------- outputs
def outputs(doc: Doc) -> list[dict]:
    T = doc.T
    svc = doc.tables["services"]
    cum = svc[svc["wave"] == "cumulative"]
    blocks = [doc.para(T("outputs.intro"))]
    if cum.empty:
        return blocks + [doc.no_data()]
    expected = expected_share(doc)
    fig = charts.outputs_vs_targets.spec(cum, doc.labels, doc.lang, expected_share=expected, min_cell=doc.min_cell)
    ok = [r for r in records(cum) if number(r["completion_attendances"]) is not None]
    takeaway = ""
    if ok:
        best = max(ok, key=lambda r: r["completion_attendances"])
        worst = min(ok, key=lambda r: r["completion_attendances"])
        takeaway = T("outputs.chart_takeaway", best=doc.line(best["service_line"]),
                     best_share=pct(best["completion_attendances"]), worst=doc.line(worst["service_line"]),
                     worst_share=pct(worst["completion_attendances"]))
    quarter = {r["service_line"]: r for r in records(svc[svc["wave"] == doc.quarter])}
    rows = []
    for r in records(cum):
        q = quarter.get(r["service_line"], {})
        for m in MEASURES:
            shown = number(r[m]) is not None
            rows.append([doc.line(r["service_line"]), T(f"chart.{m}"), count(r[f"target_{m}"]),
                         _count_or_sup(doc, q.get(m), q), count(r[m]) if shown else doc.sup,
                         pct(r[f"completion_{m}"]) if shown else doc.sup])
    table = Table(T("outputs.table_caption"), [T("background.col_line"), T("outputs.col_measure"),
                  T("outputs.col_target"), T("outputs.col_quarter"), T("outputs.col_cumulative"),
                  T("outputs.col_completion")], rows, [False, False, True, True, True, True])
    return blocks + [doc.chart(T("outputs.chart_title"), takeaway, fig, table)]


def _count_or_sup(doc: Doc, v, row: dict) -> str:
    if number(v) is None:
        return doc.sup if row and row.get("suppressed") else "–"
    return count(v)


# ---------------------------------------------------------------- outcomes
def outcome_table(doc: Doc, frame: pd.DataFrame) -> Table:
    T = doc.T
    rows = []
    for r in records(frame):
        share = str(r["indicator"]) in doc.share_columns or r["level"] == "binary"
        sup = is_outcome_suppressed(r)
        ns = "/".join(doc.n_text(r[c], sup) if c != "n_pairs" or r["scope"] != "cross_section" else "–"
                      for c in ("n_pre", "n_post", "n_pairs"))
        scope = doc.labels.get(f"scope:{r['scope']}", r["scope"]) + (
            ("：" if doc.lang == "zh" else ": ") + r["group"] if r["group"] else "")
        waves = f"{doc.wave(r['pre_wave'], True)} → {doc.wave(r['post_wave'], True)}"
        if sup:
            rows.append([doc.label(r), scope, waves, ns, doc.sup, "", "", "", "", ""])
            continue
        es = "" if number(r["effect_size"]) is None else f"{r['effect_size_name']} = {num(r['effect_size'])}"
        p = number(r["p_adjusted"]) if number(r["p_adjusted"]) is not None else number(r["p_value"])
        rows.append([doc.label(r), scope, waves, ns, value(r["mean_pre"], share), value(r["mean_post"], share),
                     f"{value(r['diff'], share)} ({value(r['diff_ci_low'], share)} – {value(r['diff_ci_high'], share)})",
                     str(r["test"]), "<0.001" if p is not None and p < 0.001 else num(p, 3), es])
    return Table(T("outcomes.table_caption"), [T("outcomes.col_scale"), T("outcomes.col_scope"),
                 T("outcomes.col_waves"), T("outcomes.col_n"), T("outcomes.col_pre"), T("outcomes.col_post"),
                 T("outcomes.col_diff"), T("outcomes.col_test"), T("outcomes.col_p"), T("outcomes.col_es")], rows,
                 [False, False, False, True, True, True, True, False, True, True])


def outcomes(doc: Doc) -> list[dict]:
    T = doc.T
    latest = doc.latest_outcomes()
    shown = doc.headline_outcomes()
    methods = sorted({m for m in latest["adjust_method"] if m}) if not latest.empty else []
    blocks = [doc.para(T("outcomes.intro", method=", ".join(methods) or "Holm"))]
    if latest.empty:
        blocks.append(doc.no_data())
    else:
        forest = shown[shown["effect_size_name"].isin(ZERO_CENTRED) | shown["suppressed"]]
        fig = charts.forest_plot.spec(doc.with_instrument(forest), doc.labels, doc.lang, min_cell=doc.min_cell, alpha=doc.alpha)
        ok = [r for r in records(forest) if not is_outcome_suppressed(r) and number(r["effect_size"]) is not None]
        takeaway = ""
        if ok:
            top = max(ok, key=lambda r: abs(r["effect_size"]))
            takeaway = T("outcomes.forest_takeaway", label=doc.label(top), name=top["effect_size_name"],
                         es=num(top["effect_size"]))
        blocks.append(doc.chart(T("outcomes.forest_title"), takeaway, fig, outcome_table(doc, latest)))
        if len(forest) < len(shown):
            blocks.append(doc.note(T("outcomes.forest_note")))
    blocks += wellbeing(doc)
    blocks += longitudinal.reliable_change(doc)
    blocks += longitudinal.trend_models(doc)
    return blocks


def wellbeing(doc: Doc) -> list[dict]:
    T = doc.T
    est = doc.tables["estimates"]
    low_cols = [f"{s.id}_low" for _, b in doc.books for s in b.scales.values() if s.low_cut is not None]
    rows = est[est["indicator"].isin(low_cols) & (est["group_var"] == "") & (est["stat"] == "proportion")]
    if rows.empty:
        return []
    col = rows["indicator"].iloc[0]
    rows = rows[(rows["indicator"] == col) & (rows["instrument"] == rows["instrument"].iloc[0])]
    fig = charts.wellbeing_bands.spec(rows, doc.labels, doc.lang, waves=doc.wave_order, min_cell=doc.min_cell)
    ones = sorted([r for r in records(rows) if r["level"] == "1"], key=lambda r: doc.wave_rank(r["wave"]))
    ok = [r for r in ones if number(r["estimate"]) is not None]
    takeaway = T("outcomes.wellbeing_takeaway", first_wave=doc.wave(ok[0]["wave"], True), first=pct(ok[0]["estimate"]),
                 last_wave=doc.wave(ok[-1]["wave"], True), last=pct(ok[-1]["estimate"])) if len(ok) >= 2 else ""
    table = Table("", [T("methods.col_wave"), T("chart.band_low"), T("line.col_ci"), T("line.col_n")],
                  [[doc.wave(r["wave"], True), doc.est_text(r), doc.ci_text(r),
                    doc.n_text(r["n"], charts.is_suppressed(r, doc.min_cell))] for r in ones],
                  [False, True, True, True])
    return [doc.chart(T("outcomes.wellbeing_title"), takeaway, fig, table)]


# ---------------------------------------------------------------- satisfaction
def satisfaction(doc: Doc) -> list[dict]:
    T = doc.T
    target = number(doc.ctx.config.satisfaction.get("target_share"))
    blocks = [doc.para(T("satisfaction.intro", target=pct(target)))]
    items = satisfaction_rows(doc, doc.quarter)
    if not items:
        blocks.append(doc.no_data())
    else:
        order = {l.id: i for i, l in enumerate(doc.ctx.config.service_lines)}
        items.sort(key=lambda it: (order.get(it["service_line"], 99), [k for k, _ in doc.books].index(it["instrument"])))
        frames = []
        for it in items:
            name = doc.line(it["service_line"]) if it["service_line"] else it["label"]
            label = f"{name}（{doc.inst(it['instrument'])}）" if doc.lang == "zh" else f"{name} ({doc.inst(it['instrument'])})"
            frames.append(it["rows"].assign(**{f"label_{doc.lang}": label,
                                               "indicator": f"{it['instrument']}:{it['indicator']}"}))
            it["display"] = label
        fig = charts.likert_bars.spec(pd.concat(frames, ignore_index=True), doc.labels, doc.lang, min_cell=doc.min_cell)
        shown = [it for it in items if it["share"] is not None]
        takeaway = ""
        if shown:
            best, worst = max(shown, key=lambda it: it["share"]), min(shown, key=lambda it: it["share"])
            takeaway = T("satisfaction.chart_takeaway", best=best["display"], best_share=pct(best["share"]),
                         worst=worst["display"], worst_share=pct(worst["share"]))
        rows = [[it["display"], doc.inst(it["instrument"]), doc.sup if it["share"] is None else pct(it["share"], 1),
                 doc.n_text(it["n"], it["suppressed"]),
                 "" if it["share"] is None or target is None else T(
                     "satisfaction.yes" if it["share"] >= target else "satisfaction.no")] for it in items]
        table = Table(T("satisfaction.table_caption"), [T("satisfaction.col_item"), T("line.col_instrument"),
                      T("satisfaction.col_rate"), T("line.col_n"), T("satisfaction.col_target")], rows,
                      [False, False, True, True, False])
        blocks.append(doc.chart(T("satisfaction.chart_title", wave=doc.wave(doc.quarter, True)), takeaway, fig, table))
    quotes = free_text_quotes(doc.ctx)
    if quotes:
        blocks.append(doc.sub(T("satisfaction.voices")))
        blocks.append({"kind": "quotes", "items": [{"text": q["text"], "meta": " · ".join(
            x for x in (doc.inst(q["instrument"]) if q["instrument"] else "", doc.wave(q["wave"], True)
                        if q["wave"] else "") if x)} for q in quotes]})
        blocks.append(doc.note(T("satisfaction.voices_note")))
    return blocks


# ---------------------------------------------------------------- data quality and methods
def methods(doc: Doc) -> list[dict]:
    T = doc.T
    blocks = []
    funnel = doc.tables["funnel"]
    fq = funnel[funnel["wave"] == doc.quarter]
    if fq.empty:
        blocks += [doc.sub(T("methods.funnel_title", wave=doc.wave(doc.quarter, True))), doc.no_data()]
    else:
        fig = charts.funnel_chart.spec(fq, doc.labels, doc.lang)
        read = fq.loc[fq["rule"] == "read", "rows"].sum()
        kept = fq.loc[fq["rule"] == "kept", "rows"].sum()
        rules = fq[~fq["rule"].isin(["read", "kept"])].groupby("rule", sort=False)["rows"].sum()
        rules = rules[rules > 0].sort_values(ascending=False, kind="stable")
        takeaway = T("methods.funnel_takeaway", read=count(read), kept=count(kept), share=pct(kept / read if read else None),
                     rule=doc.labels.get(f"rule:{rules.index[0]}", rules.index[0]), removed=count(rules.iloc[0])) \
            if len(rules) else T("methods.funnel_takeaway_none", read=count(read)) if read \
            else T("methods.funnel_takeaway_empty")
        rows = [[doc.inst(r["instrument"]), doc.labels.get(f"rule:{r['rule']}", r["rule"]), count(r["rows"])]
                for r in records(fq.sort_values(["instrument", "step"], kind="stable"))]
        table = Table("", [T("methods.col_instrument"), T("methods.col_step"), T("methods.col_remaining")], rows,
                      [False, False, True])
        blocks.append(doc.chart(T("methods.funnel_title", wave=doc.wave(doc.quarter, True)), takeaway, fig, table))
    blocks += _weighting(doc)
    blocks += _attrition(doc)
    blocks += _reliability(doc)
    blocks += _validation(doc)
    blocks += _instruments(doc)
    blocks.append(doc.sub(T("methods.statistics")))
    blocks.append(doc.para(T("methods.statistics_text", min_cell=doc.min_cell)))
    return blocks


def _weighting(doc: Doc) -> list[dict]:
    T = doc.T
    blocks = [doc.sub(T("methods.weighting")), doc.para(T("methods.weighting_intro"))]
    w = doc.tables["weights"]
    if w.empty:
        blocks.append(doc.no_data())
    else:
        rows = [[doc.wave(r["wave"], True), doc.inst(r["instrument"]), count(r["n"]), count(r["population_total"]),
                 num(r["deff_kish"]), count(r["n_effective"]), f"{num(r['weight_min'])} – {num(r['weight_max'])}",
                 T("satisfaction.yes") if r["converged"] else T("satisfaction.no")]
                for r in records(w.assign(_r=w["wave"].map(doc.wave_rank)).sort_values(["_r", "instrument"], kind="stable"))]
        blocks.append(doc.table(Table(T("methods.weighting"), [T("methods.col_wave"), T("methods.col_instrument"),
                      T("methods.col_n"), T("methods.col_population"), T("methods.col_deff"), T("methods.col_neff"),
                      T("methods.col_wrange"), T("methods.col_converged")], rows, [False, False] + [True] * 5 + [False])))
    comp = doc.tables["composition"]
    cq = comp[comp["wave"] == doc.quarter]
    for inst, grp in cq.groupby("instrument", sort=False):
        fig = charts.composition_bars.spec(grp, doc.labels, doc.lang, min_cell=doc.min_cell)
        ok = [r for r in records(grp) if number(r["sample_share"]) is not None and number(r["population_share"]) is not None]
        takeaway = ""
        if ok:
            worst = max(ok, key=lambda r: abs(r["sample_share"] - r["population_share"]))
            takeaway = T("methods.composition_takeaway", level=_level_name(doc, worst), sample=pct(worst["sample_share"]),
                         population=pct(worst["population_share"]), weighted=pct(worst["weighted_share"]))
        rows = [[_level_name(doc, r), doc.n_text(r["sample_n"], bool(r["suppressed"])),
                 doc.sup if r["suppressed"] else pct(r["sample_share"], 1),
                 doc.sup if r["suppressed"] else pct(r["weighted_share"], 1), pct(r["population_share"], 1)]
                for r in records(grp)]
        table = Table("", [T("methods.col_group"), T("methods.col_n"), T("chart.sample"), T("chart.weighted"),
                           T("chart.population")], rows, [False, True, True, True, True])
        blocks.append(doc.chart(T("methods.composition_title", instrument=doc.inst(inst),
                                  wave=doc.wave(doc.quarter, True)), takeaway, fig, table))
    return blocks


def _level_name(doc: Doc, r: dict) -> str:
    var = doc.labels.get(f"var:{r['variable']}", r["variable"])
    return f"{var}: {doc.labels.get(str(r['variable']) + ':' + str(r['level']), r['level'])}"


def _attrition(doc: Doc) -> list[dict]:
    T = doc.T
    latest = doc.latest_outcomes()
    panel = latest[latest["scope"] == "panel"] if not latest.empty else latest
    blocks = [doc.sub(T("methods.attrition")), doc.para(T("methods.attrition_intro"))]
    if panel.empty:
        return blocks + [doc.no_data()]
    w = doc.tables["weights"]
    sizes = {(r["wave"], r["instrument"]): r["n"] for r in records(w)}
    rows = []
    for (inst, pre, post), grp in panel.groupby(["instrument", "pre_wave", "post_wave"], sort=False):
        # the waves' full samples (the panel rows' own n_pre/n_post may count the matched pairs only)
        n_pre = sizes.get((pre, inst), grp["n_pre"].max())
        n_post = sizes.get((post, inst), grp["n_post"].max())
        pairs = grp["n_pairs"].max()
        sup = number(pairs) is not None and pairs < doc.min_cell
        rows.append([doc.inst(inst), f"{doc.wave(pre, True)} → {doc.wave(post, True)}", doc.n_text(n_pre),
                     doc.n_text(n_post), doc.n_text(pairs, sup),
                     doc.sup if sup else pct(pairs / n_pre if n_pre else None, 1)])
    return blocks + [doc.table(Table(T("methods.attrition"), [T("methods.col_instrument"), T("outcomes.col_waves"),
                     T("methods.col_n_pre"), T("methods.col_n_post"), T("methods.col_pairs"), T("methods.col_retention")],
                     rows, [False, False, True, True, True, True]))] + longitudinal.attrition(doc)


def _reliability(doc: Doc) -> list[dict]:
    T = doc.T
    rel = doc.tables["reliability"]
    rel = rel[rel["wave"] == doc.quarter]
    if rel.empty:
        return []
    rows = [[short(str(r[f"label_{doc.lang}"] or r["scale"])), doc.inst(r["instrument"]), str(int(r["k"])) if
             number(r["k"]) is not None else "–", doc.sup if r["suppressed"] else num(r["alpha"]),
             "" if r["suppressed"] else f"{num(r['ci_low'])} – {num(r['ci_high'])}", doc.n_text(r["n"], r["suppressed"])]
            for r in records(rel)]
    return [doc.sub(T("methods.reliability")), doc.para(T("methods.reliability_intro")),
            doc.table(Table(T("methods.reliability"), [T("line.col_indicator"), T("methods.col_instrument"),
                            T("methods.col_items"), "α", T("line.col_ci"), T("methods.col_n")], rows,
                            [False, False, True, True, True, True]))]


def _validation(doc: Doc) -> list[dict]:
    T = doc.T
    blocks = [doc.sub(T("methods.validation")),
              {"kind": "links", "intro": T("methods.validation_intro"),
               "items": [{"href": "validation/index.html", "text": T("methods.validation_link")}]}]
    v = doc.tables["validation"]
    if v.empty:
        return blocks + [doc.no_data()]
    rows = []
    insts = [k for k, _ in doc.books]
    v = v.assign(_w=v["wave"].map(doc.wave_rank), _i=v["instrument"].map(lambda i: insts.index(i) if i in insts else 99))
    v = v.sort_values(["_w", "_i", "instrument"], kind="stable")
    for (wave, inst), grp in v.groupby(["wave", "instrument"], sort=False):
        failed = grp[~grp["success"]]
        rows.append([doc.wave(wave, True), doc.inst(inst), count(len(grp)), count(int(grp["success"].sum())),
                     count(int((failed["severity"] == "critical").sum())),
                     count(int((failed["severity"] != "critical").sum()))])
    return blocks + [doc.table(Table(T("methods.validation"), [T("methods.col_wave"), T("methods.col_instrument"),
                     T("methods.col_expectations"), T("methods.col_passed"), T("methods.col_failed_critical"),
                     T("methods.col_failed_warning")], rows, [False, False, True, True, True, True]))]


def _instruments(doc: Doc) -> list[dict]:
    T = doc.T
    pops = doc.ctx.config.populations
    rows = []
    for inst, book in doc.books:
        pop = pops.get(book.population)
        rows.append([doc.inst(inst), book.title, doc.ctx.versions.get(inst, book.version) or "–",
                     (pop.label_zh if doc.lang == "zh" else pop.label_en) if pop else "–"])
    return [doc.sub(T("methods.instruments")), doc.table(Table(T("methods.instruments"), [T("methods.col_instrument"),
            T("methods.col_title"), T("methods.col_version"), T("methods.col_target_population")], rows))]


# ---------------------------------------------------------------- appendix
def appendix(doc: Doc) -> list[dict]:
    T = doc.T
    items = [{"href": f"tables/{name}.csv", "text": f"{T('table.' + name)} — tables/{name}.csv"} for name in CSV_TABLES]
    items += longitudinal.csv_links(doc)
    items.append({"href": "tables/appendix.xlsx", "text": f"{T('appendix.workbook')} — tables/appendix.xlsx"})
    blocks = [{"kind": "links", "intro": T("appendix.intro"), "items": items}]
    svc = doc.tables["services"]
    if not svc.empty:
        rows = [[doc.wave(r["wave"], True), doc.line(r["service_line"]), count(r["activities"]),
                 _count_or_sup(doc, r["attendances"], r), _count_or_sup(doc, r["people"], r)] for r in records(svc)]
        blocks.append(doc.table(Table(T("appendix.services_caption"), [T("methods.col_wave"), T("background.col_line"),
                      T("chart.activities"), T("chart.attendances"), T("chart.people")], rows,
                      [False, False, True, True, True])))
    blocks.append(doc.para(T("appendix.estimates_note", n=count(len(doc.tables["estimates"])))))
    return blocks
