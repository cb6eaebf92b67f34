"""Summary, background and baseline, and one section per service line."""
from __future__ import annotations

import pandas as pd

from pipelines import charts
from pipelines.report import longitudinal
from pipelines.report.document import Doc, Table, is_outcome_suppressed, records
from pipelines.report.results import expected_share, outcome_table, satisfaction_rows
from pipelines.report.text import count, number, option_label, pct, quarter_dates, short, value

MEASURES = ("activities", "attendances", "people")


# ---------------------------------------------------------------- summary (the first screen)
def output_totals(doc: Doc) -> dict | None:
    """Cumulative outputs summed over the lines whose counts may be shown, against their targets."""
    svc = doc.tables["services"]
    cum = svc[svc["wave"] == "cumulative"]
    if cum.empty:
        return None
    out = {"partial": bool(cum["suppressed"].any())}
    for m in MEASURES:
        ok = cum[cum[m].notna()]
        out[m] = ok[m].sum() if len(ok) else None
        out[f"target_{m}"] = ok[f"target_{m}"].sum() if len(ok) else None
        out[f"share_{m}"] = out[m] / out[f"target_{m}"] if out[f"target_{m}"] else None
    return out


def summary(doc: Doc) -> dict:
    T, ctx, p = doc.T, doc.ctx, doc.ctx.config.project
    start, end = quarter_dates(ctx.config, doc.quarter)
    meta = [T("summary.period", quarter=doc.wave(doc.quarter), start=start, end=end),
            T("summary.service_year", start=p.get("service_start", ""), end=p.get("service_end", "")),
            T("summary.funder", funder=p.get(f"funder_{doc.lang}") or p.get("funder_zh", "")),
            T("summary.budget", budget=count(p.get("budget_rmb")))]
    kpis, lines = [], []
    totals, expected = output_totals(doc), expected_share(doc)
    if totals:
        for m in (m for m in MEASURES if totals[m] is not None):
            kpis.append({"group": T("summary.kpi_outputs"), "value": count(totals[m]),
                         "label": T(f"summary.kpi_{m}"),
                         "sub": T("summary.kpi_target", target=count(totals[f"target_{m}"]),
                                  share=pct(totals[f"share_{m}"])) + (
                             T("summary.kpi_excluding") if totals["partial"] and m != "activities" else "")})
        lines.append(T("summary.line_outputs", quarter=doc.wave(doc.quarter), activities=count(totals["activities"]),
                       attendances=count(totals["attendances"]), people=count(totals["people"]),
                       p_act=pct(totals["share_activities"]), p_att=pct(totals["share_attendances"]),
                       p_people=pct(totals["share_people"]), expected=pct(expected)))
    else:
        lines.append(T("summary.no_outputs"))
    latest = [r for r in records(doc.headline_outcomes()) if not is_outcome_suppressed(r)
              and r["scope"] != "activity"]   # one comparison per indicator (panel where possible)
    if latest:
        verdicts = [doc.improved(r) for r in latest]
        better, worse = verdicts.count(1), verdicts.count(-1)
        kpis.append({"group": T("summary.kpi_effects"), "value": f"{better}/{len(latest)}",
                     "label": T("summary.kpi_improved"), "sub": T("summary.kpi_improved_sub", total=len(latest))})
        lines.append(T("summary.line_effects", total=len(latest), improved=better,
                       worse=T("summary.line_worse", n=worse) if worse else ""))
    else:
        lines.append(T("summary.no_effects"))
    sat = [r for r in satisfaction_rows(doc, doc.quarter) if r["share"] is not None]
    target = number(ctx.config.satisfaction.get("target_share"))
    if sat:
        total_n = sum(r["n"] for r in sat)
        share = sum(r["share"] * r["n"] for r in sat) / total_n if total_n else None
        verdict = "" if target is None or share is None else T(
            "summary.verdict_met" if share >= target else "summary.verdict_missed")
        kpis.append({"group": T("summary.kpi_satisfaction"), "value": pct(share), "label": T("summary.kpi_satisfied"),
                     "sub": T("summary.kpi_satisfied_sub", target=pct(target))})
        lines.append(T("summary.line_satisfaction", share=pct(share), target=pct(target), verdict=verdict))
    else:
        lines.append(T("summary.no_satisfaction"))
    n = respondents(doc)
    if n is not None:
        kpis.append({"group": T("summary.kpi_data"), "value": count(n), "label": T("summary.kpi_respondents"),
                     "sub": T("summary.kpi_respondents_sub")})
        lines.append(T("summary.line_data", n=count(n), section=7))
    return {"meta": meta, "kpis": kpis, "lines": lines}


def respondents(doc: Doc) -> float | None:
    w = doc.tables["weights"]
    w = w[(w["wave"] == doc.quarter) & (w["instrument"] != "activity")]
    if not w.empty and w["n"].notna().any():
        return float(w["n"].sum())
    f = doc.tables["funnel"]
    f = f[(f["wave"] == doc.quarter) & (f["rule"] == "kept")]
    return float(f["rows"].sum()) if not f.empty else None


# ---------------------------------------------------------------- background and the baseline
def background(doc: Doc) -> list[dict]:
    T, cfg, p = doc.T, doc.ctx.config, doc.ctx.config.project
    vulnerable = sum(int(p.get(k, 0) or 0) for k in ("children_dibao", "children_orphan", "children_disability"))
    blocks = [doc.para(T("background.project", project=p.get(f"name_{doc.lang}", p.get("name_zh")),
                         city=p.get("city_zh", ""), district=p.get("district_zh", ""),
                         subdistrict=p.get("subdistrict_zh", ""), community=p.get(f"community_{doc.lang}", ""),
                         residents=count(p.get("residents")), registered=count(p.get("residents_registered")),
                         floating=count(p.get("residents_floating")), children=count(p.get("children")),
                         vulnerable=doc.n_text(vulnerable)))]
    if doc.baseline:
        start, end = quarter_dates(cfg, doc.baseline)
        blocks.append(doc.para(T("background.baseline", wave=doc.wave(doc.baseline), start=start, end=end)))
    blocks += baseline_needs(doc)
    blocks.append(doc.sub(T("background.system_heading"), "indicators"))
    blocks.append(doc.para(T("background.system_intro")))
    rows = []
    for line in cfg.service_lines:
        names = []
        for ind in line.indicators:
            defs = [o for o in doc.outcome_defs if o.indicator == ind]
            names.append(short(defs[0].label_zh if doc.lang == "zh" else defs[0].label_en) if defs else ind)
        t = line.outputs
        area = line.area_zh if doc.lang == "zh" else line.area_en
        rows.append([f"{doc.line(line.id)}（{area}）" if doc.lang == "zh" else f"{doc.line(line.id)} ({area})",
                     "；".join(names) if doc.lang == "zh" else "; ".join(names),
                     " / ".join(count(t.get(m)) for m in MEASURES)])
    blocks.append(doc.table(Table(T("background.system_heading"), [T("background.col_line"),
                                  T("background.col_indicators"), T("background.col_targets")], rows,
                                  [False, False, True])))
    return blocks


def baseline_needs(doc: Doc) -> list[dict]:
    T = doc.T
    needs = doc.tables["needs_priority"]
    wave = doc.baseline if doc.baseline in set(needs["wave"]) else (needs["wave"].iloc[0] if len(needs) else None)
    if wave is None:
        return [doc.sub(T("background.needs_title")), doc.no_data()]
    needs = needs[needs["wave"] == wave]
    stems = sorted({i.rsplit("__", 1)[0] for i in needs["indicator"]}, key=lambda s: (s != "needs", s))
    needs = needs[needs["indicator"].str.rsplit("__", n=1).str[0] == stems[0]]
    whole = needs[needs["group_var"] == ""]
    blocks = []
    if not whole.empty:
        fig = charts.needs_ranking.spec(whole, doc.labels, doc.lang, min_cell=doc.min_cell)
        ranked = whole[whole["estimate"].notna()].groupby(f"option_label_{doc.lang}", sort=False)["estimate"] \
            .mean().sort_values(ascending=False, kind="stable")
        takeaway = T("background.needs_takeaway", top=ranked.index[0], share=pct(ranked.iloc[0]),
                     second=ranked.index[min(1, len(ranked) - 1)], share2=pct(ranked.iloc[min(1, len(ranked) - 1)])) \
            if len(ranked) else ""
        blocks.append(doc.chart(T("background.needs_title"), takeaway, fig, _needs_table(doc, whole)))
    by_compound = needs[needs["group_var"] == "compound"]
    if by_compound.empty:
        est = doc.tables["estimates"]
        by_compound = est[(est["wave"] == wave) & (est["group_var"] == "compound")
                          & est["indicator"].str.startswith(stems[0] + "__") & (est["stat"] == "proportion")]
        by_compound = by_compound.assign(option_label_zh=by_compound["label_zh"], option_label_en=by_compound["label_en"])
        if not by_compound.empty:
            for lang in ("zh", "en"):
                by_compound[f"option_label_{lang}"] = [option_label(doc.book(i), c, lang) for i, c in
                                                       zip(by_compound["instrument"], by_compound["indicator"])]
    if not by_compound.empty:
        inst = "parent" if "parent" in set(by_compound["instrument"]) else by_compound["instrument"].iloc[0]
        cells = by_compound[by_compound["instrument"] == inst]
        order = {c.id: i for i, c in enumerate(doc.ctx.config.compounds)}
        cells = cells.assign(_o=cells["group"].map(order).fillna(99)).sort_values(["_o"], kind="stable")
        fig = charts.need_heatmap.spec(cells, doc.labels, doc.lang, min_cell=doc.min_cell)
        ok = cells[cells["estimate"].notna()]
        takeaway = ""
        if not ok.empty:
            top = ok.loc[ok["estimate"].idxmax()]
            takeaway = T("background.heatmap_takeaway", need=top[f"option_label_{doc.lang}"],
                         compound=doc.labels.get(f"compound:{top['group']}", top["group"]), share=pct(top["estimate"]))
        title = T("background.heatmap_title") + (f"：{doc.inst(inst)}" if doc.lang == "zh" else f": {doc.inst(inst)}")
        blocks.append(doc.chart(title, takeaway, fig,
                                _needs_table(doc, cells, by="group")))
    return blocks


def _needs_table(doc: Doc, frame: pd.DataFrame, by: str = "instrument") -> Table:
    T = doc.T
    first = T("var.compound") if by == "group" else T("line.col_instrument")
    rows = []
    for r in records(frame):
        sup = charts.is_suppressed(r, doc.min_cell)
        who = doc.labels.get(f"compound:{r['group']}", r["group"]) if by == "group" else doc.inst(r["instrument"])
        rows.append([r[f"option_label_{doc.lang}"], who, doc.sup if sup else pct(r["estimate"], 1),
                     "" if sup else f"{pct(r['ci_low'], 1)} – {pct(r['ci_high'], 1)}", doc.n_text(r["n"], sup)])
    return Table("", [T("line.col_indicator"), first, T("line.col_estimate"), T("line.col_ci"), T("line.col_n")],
                 rows, [False, False, True, True, True])


# ---------------------------------------------------------------- one section per service line
def service_line(doc: Doc, line) -> list[dict]:
    T = doc.T
    svc = doc.tables["services"]
    cum = records(svc[(svc["wave"] == "cumulative") & (svc["service_line"] == line.id)])
    area = line.area_zh if doc.lang == "zh" else line.area_en
    if cum:
        c = cum[0]
        blocks = [doc.para(T("line.intro", area=area, quarter=doc.wave(doc.quarter),
                             activities=count(c["activities"]), t_act=count(c["target_activities"]),
                             attendances=doc.sup if number(c["attendances"]) is None else count(c["attendances"]),
                             t_att=count(c["target_attendances"]),
                             people=doc.sup if number(c["people"]) is None else count(c["people"]),
                             t_people=count(c["target_people"])))]
    else:
        blocks = [doc.para(T("line.intro_no_outputs", area=area))]
    if line.vulnerable:
        blocks.append(doc.note(T("line.vulnerable_note", min_cell=doc.min_cell)))
    defs = [o for o in doc.outcome_defs if o.service_line == line.id]
    keys = doc.key_rows(defs)
    if keys.empty:
        blocks.append(doc.no_data())
    else:
        blocks.append(doc.table(_indicator_table(doc, keys)))
        blocks.append(_trend(doc, line, keys))
    blocks += _likert_charts(doc, line)
    latest = doc.latest_outcomes(line.id)
    if not latest.empty:
        shown = doc.headline_outcomes(line.id)
        fig = charts.dumbbell.spec(doc.with_instrument(shown), doc.labels, doc.lang, min_cell=doc.min_cell,
                              share_columns=doc.share_columns, ranges=doc.ranges)
        recs = [r for r in records(latest) if not is_outcome_suppressed(r)]
        better = sum(doc.improved(r) == 1 for r in recs)
        blocks.append(doc.chart(T("line.dumbbell_title", line=doc.line(line.id)),
                                T("line.dumbbell_takeaway", n=len(recs), improved=better), fig,
                                outcome_table(doc, latest)))
    return blocks


def _display(doc: Doc, frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose labels are shortened for charts (long parentheses dropped)."""
    frame = frame.copy()
    for lang in ("zh", "en"):
        if f"label_{lang}" in frame:
            frame[f"label_{lang}"] = frame[f"label_{lang}"].map(lambda s: short(str(s)))
    return frame


def _indicator_table(doc: Doc, keys: pd.DataFrame) -> Table:
    T = doc.T
    rows = []
    for (inst, ind), grp in keys.groupby(["instrument", "indicator"], sort=False):
        by_wave = {r["wave"]: r for r in records(grp)}
        wave = max(by_wave, key=doc.wave_rank)
        r = by_wave[wave]
        base = by_wave.get(doc.baseline)
        note = "" if wave == doc.quarter else (f"（{doc.wave(wave, True)}）" if doc.lang == "zh"
                                               else f" ({doc.wave(wave, True)})")
        rows.append([doc.label(r) + note, doc.inst(inst),
                     doc.est_text(r), doc.ci_text(r), doc.n_text(r["n"], charts.is_suppressed(r, doc.min_cell)),
                     doc.est_text(base) if base is not None and base is not r else "–"])
    return Table(T("line.indicators_caption"), [T("line.col_indicator"), T("line.col_instrument"),
                 T("line.col_estimate"), T("line.col_ci"), T("line.col_n"), T("line.col_baseline")], rows,
                 [False, False, True, True, True, True])


def _trend(doc: Doc, line, keys: pd.DataFrame) -> dict:
    T = doc.T
    fig = charts.trend_lines.spec(_display(doc, keys), doc.labels, doc.lang, waves=doc.wave_order,
                             min_cell=doc.min_cell, share_columns=doc.share_columns)
    takeaway, rows = "", []
    # the trend model's estimate against the baseline beside each wave's weighted estimate (a column only
    # when some indicator of the line has a model: tables/trends.csv)
    modelled = any(longitudinal.trend_cell(doc, inst, ind, doc.baseline or "") is not None
                   for inst, ind in keys[["instrument", "indicator"]].drop_duplicates().itertuples(index=False))
    for (inst, ind), grp in keys.groupby(["instrument", "indicator"], sort=False):
        recs = sorted(records(grp), key=lambda r: doc.wave_rank(r["wave"]))
        for r in recs:
            rows.append([doc.label(r), doc.inst(inst), doc.wave(r["wave"], True), doc.est_text(r), doc.ci_text(r),
                         doc.n_text(r["n"], charts.is_suppressed(r, doc.min_cell))])
            if modelled:
                rows[-1].append(longitudinal.trend_cell(doc, inst, ind, r["wave"]) or "–")
        ok = [r for r in recs if number(r["estimate"]) is not None]
        if not takeaway and len(ok) >= 2:
            a, b = ok[0], ok[-1]
            lo, hi = number(b["ci_low"]), number(b["ci_high"])
            moved = "trend_flat" if lo is not None and hi is not None and lo <= a["estimate"] <= hi else (
                "trend_up" if b["estimate"] > a["estimate"] else "trend_down")
            share = doc.is_share(a)
            takeaway = T("line.trend_takeaway", label=doc.label(a), first_wave=doc.wave(a["wave"], True),
                         first=value(a["estimate"], share), last_wave=doc.wave(b["wave"], True),
                         last=value(b["estimate"], share), direction=T(f"line.{moved}"))
    table = Table("", [T("line.col_indicator"), T("line.col_instrument"), T("methods.col_wave"),
                       T("line.col_estimate"), T("line.col_ci"), T("line.col_n")]
                  + ([T("trends.col_line_model")] if modelled else []), rows,
                  [False, False, False, True, True, True] + ([True] if modelled else []))
    return doc.chart(T("line.trend_title", line=doc.line(line.id)), takeaway, fig, table)


def _likert_charts(doc: Doc, line) -> list[dict]:
    """Diverging bars for the line's Likert-type items this quarter, one chart per grid (or choice list)."""
    T = doc.T
    rows = doc.shares(doc.quarter)
    groups: dict[tuple, list[str]] = {}
    for inst, book in doc.books:
        for q in book.answer_questions:
            if (q.service_line == line.id and q.type == "select_one" and q.measure == "ordinal"
                    and q.correct is None and not q.satisfaction and len(q.choices) >= 3):
                groups.setdefault((inst, q.matrix or f"list:{q.list_name}"), []).append(q.name)
    blocks = []
    for (inst, group), names in groups.items():
        cells = rows[(rows["instrument"] == inst) & rows["indicator"].isin(names)]
        if cells.empty:
            continue
        stem = _likert_stem(doc, doc.book(inst), group, names)
        fig = charts.likert_bars.spec(_display(doc, cells), doc.labels, doc.lang, min_cell=doc.min_cell)
        recs = records(cells)
        positive, upper = _positive_shares(doc, recs)
        takeaway = ""
        if positive:
            best = max(positive, key=lambda kv: kv[1])
            worst = min(positive, key=lambda kv: kv[1])
            takeaway = T("line.likert_takeaway_one", item=best[0], share=pct(best[1]), top=upper) \
                if len(positive) == 1 else T("line.likert_takeaway", item=best[0], share=pct(best[1]),
                                             low_item=worst[0], low_share=pct(worst[1]), top=upper)
        table_rows = [[doc.label(r), r[f"level_label_{doc.lang}"], doc.est_text(r), doc.ci_text(r),
                       doc.n_text(r["n"], charts.is_suppressed(r, doc.min_cell))] for r in recs]
        table = Table("", [T("line.col_indicator"), T("line.col_answer"), T("line.col_estimate"), T("line.col_ci"),
                           T("line.col_n")], table_rows,
                      [False, False, True, True, True])
        title = T("line.likert_title", line=doc.line(line.id), stem=stem,
                  instrument=doc.inst(inst), wave=doc.wave(doc.quarter, True))
        blocks.append(doc.chart(title, takeaway, fig, table))
    return blocks


def _likert_stem(doc: Doc, book, group: str, names: list[str]) -> str:
    """What a Likert chart is about: its scale's name, else its grid's question up to the first '?'."""
    scales = {book[n].scale for n in names}
    if len(scales) == 1 and next(iter(scales)) in book.scales:
        scale = book.scales[next(iter(scales))]
        return short(scale.label_zh if doc.lang == "zh" else scale.label_en)
    if group in book.matrices:
        m = book.matrices[group]
        text = m.label_zh if doc.lang == "zh" else m.label_en
    else:
        q = book[names[0]]
        text = q.label_zh if doc.lang == "zh" else q.label_en
    for stop in ("？", "?", "。"):
        text = text.split(stop)[0]
    return short(text)


def _positive_shares(doc: Doc, rows: list[dict]) -> tuple[list[tuple[str, float]], str]:
    """Per item (in order of first appearance, as `groupby("indicator", sort=False)` of the rows' frame
    would give them), the share choosing the upper half of the scale; and the words of that upper half."""
    items: dict[str, list[dict]] = {}
    for r in rows:
        key = r["indicator"]
        if key is not None and key == key:   # (groupby leaves out a missing indicator: None, NaN)
            items.setdefault(key, []).append(r)
    out, upper = [], ""
    for recs in items.values():
        if any(charts.is_suppressed(r, doc.min_cell) for r in recs):
            continue
        levels = sorted({int(r["level"]) for r in recs if r["level"].isdigit()})
        top = set(levels[len(levels) - len(levels) // 2:])
        share = sum(number(r["estimate"]) or 0 for r in recs if r["level"].isdigit() and int(r["level"]) in top)
        upper = upper or "/".join(r[f"level_label_{doc.lang}"] for r in sorted(
            (r for r in recs if r["level"].isdigit() and int(r["level"]) in top), key=lambda r: int(r["level"])))
        out.append((doc.label(recs[0]), share))
    return out, upper
