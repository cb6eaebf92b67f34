"""The report's charts: one function per kind, one theme, one palette.

Every function takes tidy frames shaped like the report's tables (docs/architecture.md), a `labels`
mapping for codes (`wave:<id>`, `wave_short:<id>`, `instrument:<id>`, `compound:<id>`, `line:<id>`, ...)
and a language, and returns a `plotly.graph_objects.Figure`. Rules every chart keeps:

- text that reaches plotly (labels, hover, annotations) is HTML-escaped first: plotly renders a subset of
  HTML, and labels or groups can hold what respondents typed;
- a suppressed value (`suppressed` true, or n under the minimum cell) is drawn as an annotation reading
  "样本不足（n<5）" / "suppressed (n<5)" and its data point is `None`, never 0;
- hover text carries the estimate, its confidence interval and n.
"""
from __future__ import annotations

import html
import math
import tomllib
from functools import cache
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

FONT = '"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif'
# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
NEGATIVE = ["#D55E00", "#E69F00", "#F3C88B"]          # outermost (strongest) first
POSITIVE = ["#0072B2", "#56B4E9", "#A6D3F0"]          # outermost (strongest) first
NEUTRAL = "#BDBDBD"
SEQUENTIAL = [[0.0, "#F2F7FB"], [0.5, "#7DB8E0"], [1.0, "#0B4F82"]]
INSTRUMENT_COLOURS = {"parent": "#0072B2", "child": "#E69F00", "community": "#009E73", "activity": "#CC79A7"}
SUPPRESSED_GREY = "#7A7A7A"

THEME = go.layout.Template(layout=dict(
    font=dict(family=FONT, size=13, color="#222222"), colorway=PALETTE,
    paper_bgcolor="#FFFFFF", plot_bgcolor="#FFFFFF", dragmode=False, hovermode="closest",
    margin=dict(l=8, r=16, t=28, b=8), separators=".,",
    hoverlabel=dict(font=dict(family=FONT, size=13), align="left"),
    legend=dict(orientation="h", yanchor="top", y=-0.08, xanchor="left", x=0, font=dict(size=12)),
    xaxis=dict(fixedrange=True, automargin=True, gridcolor="#E6E6E6", zeroline=False, ticks=""),
    yaxis=dict(fixedrange=True, automargin=True, gridcolor="#E6E6E6", zeroline=False, ticks=""),
))

_STRINGS = Path(__file__).parent / "report" / "strings.toml"


@cache
def _chart_strings() -> dict[str, dict[str, str]]:
    return tomllib.loads(_STRINGS.read_text(encoding="utf-8"))["chart"]


def text(key: str, lang: str, **kw: Any) -> str:
    """A fixed chart string (strings.toml `[chart]`), formatted; not yet escaped."""
    return _chart_strings()[key][lang].format(**kw)


def esc(value: Any) -> str:
    """Text safe for plotly's HTML-like labels: `&`, `<`, `>` escaped (quotes are inert there)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return html.escape(str(value), quote=False)


def wrap(value: Any, width: int = 12, lines: int = 3) -> str:
    """Escaped text broken into short lines with <br> (CJK by character, other scripts by word)."""
    raw = "" if value is None else str(value)
    if " " in raw.strip() and not any("\u4e00" <= ch <= "\u9fff" for ch in raw):
        width = int(width * 1.9)
        out, line = [], ""
        for word in raw.split():
            if line and len(line) + 1 + len(word) > width:
                out.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        out.append(line)
    else:
        out = [raw[i:i + width] for i in range(0, len(raw), width)] or [""]
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][: max(1, len(out[-1]) - 1)] + "…"
    return "<br>".join(esc(part) for part in out)


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def is_suppressed(row: Mapping[str, Any], min_cell: int, n_col: str = "n") -> bool:
    flag = row.get("suppressed")
    if isinstance(flag, str):
        flag = flag.strip().lower() in ("true", "1", "yes")
    n = _num(row.get(n_col))
    return bool(flag) or (n is not None and 0 < n < min_cell)


def fmt(value: Any, share: bool = False, digits: int | None = None) -> str:
    v = _num(value)
    if v is None:
        return "–"
    if share:
        return f"{v * 100:.{1 if digits is None else digits}f}%"
    if digits is None:
        digits = 1 if abs(v) >= 10 else 2
    return f"{v:,.{digits}f}"


def hover(title: str, lang: str, value: Any = None, lo: Any = None, hi: Any = None, n: Any = None,
          share: bool = False, suppressed: bool = False, min_cell: int = 5, extra: list[str] = ()) -> str:
    """Hover text: bold escaped title, then value, CI and n (or the suppressed marker)."""
    parts = [f"<b>{esc(title)}</b>"]
    if suppressed:
        parts.append(esc(text("suppressed", lang, min_cell=min_cell)))
    else:
        if value is not None:
            parts.append(f"{esc(text('estimate', lang))}: {fmt(value, share)}")
        if _num(lo) is not None and _num(hi) is not None:
            parts.append(f"{esc(text('ci', lang))}: {fmt(lo, share)} – {fmt(hi, share)}")
        if _num(n) is not None:
            parts.append(f"n = {int(_num(n)):,}")
    parts.extend(esc(line) for line in extra)
    return "<br>".join(parts)


def label_of(row: Mapping[str, Any], lang: str, labels: Mapping[str, str], column: str = "label",
             key: str = "indicator", prefix: str = "") -> str:
    """A row's display label: its `<column>_<lang>` cell, else `labels[prefix+key]`, else the raw key."""
    value = row.get(f"{column}_{lang}")
    if isinstance(value, str) and value.strip():
        return value.strip()
    raw = "" if row.get(key) is None else str(row.get(key))
    return labels.get(f"{prefix}{raw}", raw)


def _figure(height: int, **layout: Any) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(template=THEME, height=height, **layout)
    return fig


def _suppressed_note(fig: go.Figure, lang: str, min_cell: int, x: Any, y: Any, xref: str = "x",
                     yref: str = "y", short: bool = False) -> None:
    key = "suppressed_short" if short else "suppressed"
    fig.add_annotation(x=x, y=y, xref=xref, yref=yref, text=esc(text(key, lang, min_cell=min_cell)),
                       showarrow=False, xanchor="left" if not short else "center",
                       font=dict(size=11, color=SUPPRESSED_GREY), bgcolor="rgba(255,255,255,0.85)")


def _rows(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    return [] if frame is None or frame.empty else frame.to_dict("records")


def _level_key(level: Any) -> tuple:
    v = _num(level)
    return (0, v, "") if v is not None else (1, 0.0, str(level))


def _level_str(level: Any) -> str:
    v = _num(level)
    return str(int(v)) if v is not None and v.is_integer() else str(level)


# ---------------------------------------------------------------- 1. Likert items: diverging stacked bars
def likert_bars(estimates: pd.DataFrame, labels: Mapping[str, str], lang: str, *, min_cell: int = 5,
                item_label: str = "label") -> go.Figure:
    """One bar per item (rows of `indicator`), its answer shares split around the neutral point."""
    rows = _rows(estimates)
    items = list(dict.fromkeys(str(r["indicator"]) for r in rows))
    levels = sorted({_level_str(r["level"]) for r in rows}, key=_level_key)
    k = len(levels)
    n_neg, neutral = k // 2, (levels[k // 2] if k % 2 else None)
    level_label = {lv: _level_str(lv) for lv in levels}
    item_text, item_n, item_sup, cells = {}, {}, {}, {}
    for r in rows:
        item, lv = str(r["indicator"]), _level_str(r["level"])
        item_text.setdefault(item, label_of(r, lang, labels, item_label))
        level_label[lv] = label_of(r, lang, labels, "level_label", "level", f"level:{item}:")
        sup = is_suppressed(r, min_cell)
        item_sup[item] = item_sup.get(item, False) or sup
        if not sup:
            item_n[item] = max(item_n.get(item, 0), _num(r.get("n")) or 0)
        cells[(item, lv)] = r
    ys = [wrap(item_text[i], 14) for i in items]
    fig = _figure(110 + 46 * len(items), barmode="relative", bargap=0.35,
                  xaxis=dict(range=[-100, 100], tickvals=[-100, -50, 0, 50, 100],
                             ticktext=["100%", "50%", "0", "50%", "100%"], zeroline=True, zerolinecolor="#888"),
                  yaxis=dict(autorange="reversed", categoryorder="array", categoryarray=ys))

    def colour(i: int) -> str:
        if i < n_neg:
            return NEGATIVE[: n_neg][i] if n_neg <= 3 else NEGATIVE[min(i, 2)]
        if neutral is not None and i == n_neg:
            return NEUTRAL
        j = k - 1 - i
        return POSITIVE[j] if j < 3 else POSITIVE[2]

    def trace(lv: str, i: int, factor: float, name_shown: bool) -> go.Bar:
        xs, hv = [], []
        for item in items:
            r = cells.get((item, lv))
            value = None if r is None or item_sup[item] else _num(r.get("estimate"))
            xs.append(None if value is None else round(value * 100 * factor, 6))
            hv.append(hover(f"{item_text[item]} · {level_label[lv]}", lang, value,
                            r.get("ci_low") if r else None, r.get("ci_high") if r else None,
                            item_n.get(item), share=True, suppressed=item_sup[item], min_cell=min_cell))
        return go.Bar(x=xs, y=ys, orientation="h", name=wrap(level_label[lv], 10, 2), legendgroup=lv,
                      showlegend=name_shown, legendrank=i, marker=dict(color=colour(i)),
                      hovertext=hv, hoverinfo="text")

    order: list[tuple[str, int, float, bool]] = []
    if neutral is not None:
        order += [(neutral, n_neg, -0.5, True), (neutral, n_neg, 0.5, False)]
    for step in range(max(n_neg, k - n_neg)):
        if step < n_neg:
            order.append((levels[n_neg - 1 - step], n_neg - 1 - step, -1.0, True))
        i = n_neg + (1 if neutral is not None else 0) + step
        if i < k:
            order.append((levels[i], i, 1.0, True))
    for lv, i, factor, shown in order:
        fig.add_trace(trace(lv, i, factor, shown))
    for item, y in zip(items, ys):
        if item_sup[item]:
            _suppressed_note(fig, lang, min_cell, -95, y)
    return fig


# ---------------------------------------------------------------- 2. needs ranking with CIs
def needs_ranking(needs: pd.DataFrame, labels: Mapping[str, str], lang: str, *, min_cell: int = 5) -> go.Figure:
    """Horizontal bars of the share naming each need, one colour per instrument, CI whiskers."""
    rows = _rows(needs)
    options = list(dict.fromkeys(label_of(r, lang, labels, "option_label") for r in rows))
    mean: dict[str, list[float]] = {}
    for r in rows:
        v = None if is_suppressed(r, min_cell) else _num(r.get("estimate"))
        if v is not None:
            mean.setdefault(label_of(r, lang, labels, "option_label"), []).append(v)
    options.sort(key=lambda o: -sum(mean.get(o, [0])) / max(1, len(mean.get(o, [0]))))
    ys = {o: wrap(o, 12) for o in options}
    n_inst = max(1, len({r["instrument"] for r in rows}))
    fig = _figure(int(120 + 26 * len(options) * (1 + n_inst) / 1.4),
                  barmode="group", bargap=0.25, xaxis=dict(ticksuffix="%", rangemode="tozero"),
                  yaxis=dict(autorange="reversed", categoryorder="array", categoryarray=list(ys.values())))
    notes = []
    for inst in dict.fromkeys(r["instrument"] for r in rows):
        sub = [r for r in rows if r["instrument"] == inst]
        by_opt = {label_of(r, lang, labels, "option_label"): r for r in sub}
        xs, plus, minus, hv = [], [], [], []
        for o in options:
            r = by_opt.get(o)
            sup = r is not None and is_suppressed(r, min_cell)
            v = None if r is None or sup else _num(r.get("estimate"))
            lo, hi = (_num(r.get("ci_low")), _num(r.get("ci_high"))) if r and not sup else (None, None)
            xs.append(None if v is None else round(v * 100, 6))
            plus.append(None if v is None or hi is None else round((hi - v) * 100, 6))
            minus.append(None if v is None or lo is None else round((v - lo) * 100, 6))
            hv.append(hover(f"{o} · {labels.get('instrument:' + str(inst), inst)}", lang, v, lo, hi,
                            r.get("n") if r else None, share=True, suppressed=sup, min_cell=min_cell))
            if sup:
                notes.append(ys[o])
        fig.add_trace(go.Bar(x=xs, y=[ys[o] for o in options], orientation="h",
                             name=esc(labels.get(f"instrument:{inst}", inst)),
                             marker=dict(color=INSTRUMENT_COLOURS.get(str(inst), PALETTE[4])),
                             error_x=dict(type="data", array=plus, arrayminus=minus, color="#444", thickness=1),
                             hovertext=hv, hoverinfo="text"))
    for y in dict.fromkeys(notes):
        _suppressed_note(fig, lang, min_cell, 0, y)
    return fig


# ---------------------------------------------------------------- 3. compound × need heatmap
def need_heatmap(cells: pd.DataFrame, labels: Mapping[str, str], lang: str, *, min_cell: int = 5) -> go.Figure:
    """Share naming each need (rows) in each compound (columns); suppressed cells left blank and marked."""
    rows = _rows(cells)
    needs = list(dict.fromkeys(label_of(r, lang, labels, "option_label") for r in rows))
    groups = list(dict.fromkeys(str(r["group"]) for r in rows))
    xs = [wrap(labels.get(f"compound:{g}", g), 5, 2) for g in groups]
    ys = [wrap(o, 9, 2) for o in needs]
    z = [[None] * len(groups) for _ in needs]
    tx = [[""] * len(groups) for _ in needs]
    hv = [[""] * len(groups) for _ in needs]
    fig = _figure(140 + 46 * len(needs), xaxis=dict(side="top", tickangle=0),
                  yaxis=dict(autorange="reversed"))
    for r in rows:
        i, j = needs.index(label_of(r, lang, labels, "option_label")), groups.index(str(r["group"]))
        sup = is_suppressed(r, min_cell)
        v = None if sup else _num(r.get("estimate"))
        z[i][j] = None if v is None else round(v * 100, 6)
        tx[i][j] = esc(text("suppressed_short", lang, min_cell=min_cell)) if sup else (
            "" if v is None else f"{v * 100:.0f}")
        hv[i][j] = hover(f"{labels.get('compound:' + str(r['group']), r['group'])} · {needs[i]}", lang, v,
                         r.get("ci_low"), r.get("ci_high"), r.get("n"), share=True, suppressed=sup,
                         min_cell=min_cell)
    fig.add_trace(go.Heatmap(z=z, x=xs, y=ys, text=tx, texttemplate="%{text}", hovertext=hv,
                             hoverinfo="text", colorscale=SEQUENTIAL, zmin=0, zmax=100, xgap=2, ygap=2,
                             hoverongaps=True, colorbar=dict(ticksuffix="%", thickness=10, len=0.8)))
    return fig


# ---------------------------------------------------------------- 4. sample versus population
def composition_bars(composition: pd.DataFrame, labels: Mapping[str, str], lang: str, *,
                     min_cell: int = 5) -> go.Figure:
    """Per variable level: sample share, weighted share and population share side by side."""
    rows = _rows(composition)
    cats = [wrap(f"{labels.get('var:' + str(r['variable']), r['variable'])}: "
                 f"{labels.get(str(r['variable']) + ':' + str(r['level']), r['level'])}", 14, 2) for r in rows]
    fig = _figure(120 + 62 * len(rows), barmode="group", bargap=0.2, bargroupgap=0.05,
                  xaxis=dict(ticksuffix="%", rangemode="tozero"),
                  yaxis=dict(autorange="reversed", categoryorder="array", categoryarray=list(dict.fromkeys(cats))))
    series = [("sample_share", "sample", NEGATIVE[1]), ("weighted_share", "weighted", POSITIVE[0]),
              ("population_share", "population", "#555555")]
    for col, key, colour in series:
        xs, hv = [], []
        for r, cat in zip(rows, cats):
            sup = col != "population_share" and is_suppressed(r, min_cell, "sample_n")
            v = None if sup else _num(r.get(col))
            xs.append(None if v is None else round(v * 100, 6))
            n = r.get("sample_n") if col != "population_share" else None
            hv.append(hover(f"{cat.replace('<br>', '')} · {text(key, lang)}", lang, v, n=n, share=True,
                            suppressed=sup, min_cell=min_cell))
        fig.add_trace(go.Bar(x=xs, y=cats, orientation="h", name=esc(text(key, lang)),
                             marker=dict(color=colour), hovertext=hv, hoverinfo="text"))
    for r, cat in zip(rows, cats):
        if is_suppressed(r, min_cell, "sample_n"):
            _suppressed_note(fig, lang, min_cell, 0, cat)
    return fig


# ---------------------------------------------------------------- 5. data-quality funnel
def funnel_chart(funnel: pd.DataFrame, labels: Mapping[str, str], lang: str) -> go.Figure:
    """Rows remaining after each cleaning rule, one funnel per instrument (read → … → kept)."""
    rows = _rows(funnel)
    steps = list(dict.fromkeys(str(r["rule"]) for r in sorted(rows, key=lambda r: _num(r.get("step")) or 0)))
    steps = [s for s in steps if s not in ("read", "kept")]
    names = [wrap(labels.get(f"rule:{s}", s), 12, 2) for s in ["read", *steps, "kept"]]
    fig = _figure(int(140 + 30 * len(names) * (1 + len({r['instrument'] for r in rows})) / 1.5),
                  funnelmode="group", yaxis=dict(categoryorder="array", categoryarray=names))
    for inst in dict.fromkeys(r["instrument"] for r in rows):
        sub = {str(r["rule"]): _num(r.get("rows")) or 0 for r in rows if r["instrument"] == inst}
        remaining = sub.get("read", 0)
        values, hv = [remaining], [hover(labels.get("rule:read", "read"), lang, n=remaining)]
        for s in steps:
            removed = sub.get(s, 0)
            remaining -= removed
            values.append(remaining)
            hv.append(hover(labels.get(f"rule:{s}", s), lang, n=remaining,
                            extra=[text("removed", lang, n=f"{int(removed):,}")]))
        kept = sub.get("kept", remaining)
        values.append(kept)
        hv.append(hover(labels.get("rule:kept", "kept"), lang, n=kept))
        fig.add_trace(go.Funnel(y=names, x=values, name=esc(labels.get(f"instrument:{inst}", inst)),
                                marker=dict(color=INSTRUMENT_COLOURS.get(str(inst), PALETTE[4])),
                                textinfo="value", hovertext=hv, hoverinfo="text",
                                connector=dict(line=dict(color="#CCCCCC", width=1))))
    return fig


# ---------------------------------------------------------------- 6. forest plot of effect sizes
def forest_plot(outcomes: pd.DataFrame, labels: Mapping[str, str], lang: str, *, min_cell: int = 5,
                alpha: float = 0.05) -> go.Figure:
    """Effect size and its CI per comparison; filled markers where the adjusted p is under alpha."""
    rows = _rows(outcomes)
    cats = [wrap(f"{label_of(r, lang, labels)} · {labels.get('scope:' + str(r.get('scope')), r.get('scope'))}",
                 16, 2) for r in rows]
    fig = _figure(110 + 44 * len(rows), xaxis=dict(zeroline=True, zerolinecolor="#888", zerolinewidth=1),
                  yaxis=dict(autorange="reversed", categoryorder="array", categoryarray=cats), showlegend=True)
    for significant in (True, False):
        xs, ys, plus, minus, hv = [], [], [], [], []
        for r, cat in zip(rows, cats):
            if _sup_outcome(r, min_cell):
                continue
            es, p = _num(r.get("effect_size")), _num(r.get("p_adjusted"))
            p = _num(r.get("p_value")) if p is None else p
            if es is None or (p is not None and p < alpha) != significant:
                continue
            lo, hi = _num(r.get("es_ci_low")), _num(r.get("es_ci_high"))
            xs.append(es)
            ys.append(cat)
            plus.append(None if hi is None else hi - es)
            minus.append(None if lo is None else es - lo)
            hv.append(hover(label_of(r, lang, labels), lang, es, lo, hi, r.get("n_pairs") or r.get("n_post"),
                            extra=[f"{r.get('effect_size_name', '')}", text("p_value", lang, p=fmt(p, digits=3)),
                                   text("diff", lang, d=fmt(r.get("diff")))]))
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="markers", name=esc(text("significant" if significant else "not_significant", lang)),
            marker=dict(size=10, color=POSITIVE[0], symbol="circle" if significant else "circle-open",
                        line=dict(width=2, color=POSITIVE[0])),
            error_x=dict(type="data", array=plus, arrayminus=minus, color="#555", thickness=1.5),
            hovertext=hv, hoverinfo="text"))
    for r, cat in zip(rows, cats):
        if _sup_outcome(r, min_cell):
            _suppressed_note(fig, lang, min_cell, 0, cat)
    return fig


def _sup_outcome(r: Mapping[str, Any], min_cell: int) -> bool:
    ns = [_num(r.get(c)) for c in ("n_pairs", "n_pre", "n_post")]
    scope = str(r.get("scope"))
    small = (scope == "panel" and ns[0] is not None and ns[0] < min_cell) or any(
        n is not None and n < min_cell for n in ns[1:])
    flag = r.get("suppressed")
    return bool(flag) and str(flag).lower() not in ("false", "0", "") or small


# ---------------------------------------------------------------- 7. pre → post dumbbells
def dumbbell(outcomes: pd.DataFrame, labels: Mapping[str, str], lang: str, *, min_cell: int = 5,
             share_columns: frozenset[str] = frozenset()) -> go.Figure:
    """One small panel per indicator (each on its own scale): pre mean → post mean."""
    rows = _rows(outcomes)
    titles = [wrap(f"{label_of(r, lang, labels)} · {labels.get('scope:' + str(r.get('scope')), r.get('scope'))}",
                   26, 2) for r in rows]
    fig = make_subplots(rows=max(1, len(rows)), cols=1, subplot_titles=titles or None,
                        vertical_spacing=min(0.12, 0.5 / max(1, len(rows))))
    fig.update_layout(template=THEME, height=70 + 92 * max(1, len(rows)), showlegend=True)
    fig.update_annotations(font=dict(size=12), xanchor="left", x=0)
    for i, r in enumerate(rows, start=1):
        share = str(r.get("indicator")) in share_columns or str(r.get("level")) == "binary"
        scale = 100 if share else 1
        fig.update_yaxes(showticklabels=False, row=i, col=1)
        if share:
            fig.update_xaxes(ticksuffix="%", row=i, col=1)
        if _sup_outcome(r, min_cell):
            fig.add_trace(go.Scatter(x=[None], y=[0], showlegend=False, hoverinfo="skip"), row=i, col=1)
            _suppressed_note(fig, lang, min_cell, 0.02, 0.5, xref=f"x{i if i > 1 else ''} domain",
                             yref=f"y{i if i > 1 else ''} domain")
            continue
        pre, post = _num(r.get("mean_pre")), _num(r.get("mean_post"))
        pre_w = labels.get(f"wave_short:{r.get('pre_wave')}", str(r.get("pre_wave")))
        post_w = labels.get(f"wave_short:{r.get('post_wave')}", str(r.get("post_wave")))
        fig.add_trace(go.Scatter(x=[None if pre is None else pre * scale, None if post is None else post * scale],
                                 y=[0, 0], mode="lines", line=dict(color="#AAAAAA", width=4),
                                 showlegend=False, hoverinfo="skip"), row=i, col=1)
        for key, value, wave, n, colour, first in (
                ("pre", pre, pre_w, r.get("n_pre"), NEGATIVE[1], i == 1),
                ("post", post, post_w, r.get("n_post"), POSITIVE[0], i == 1)):
            extra = [f"{text('diff_ci', lang)}: {fmt(r.get('diff'), share)} "
                     f"({fmt(r.get('diff_ci_low'), share)} – {fmt(r.get('diff_ci_high'), share)})"] if key == "post" else []
            fig.add_trace(go.Scatter(
                x=[None if value is None else value * scale], y=[0], mode="markers",
                name=esc(text(key, lang)), legendgroup=key, showlegend=first,
                marker=dict(size=13, color=colour, line=dict(color="#FFFFFF", width=1)),
                hovertext=[hover(f"{label_of(r, lang, labels)} · {wave}", lang, value, n=n, share=share,
                                 extra=extra)], hoverinfo="text"), row=i, col=1)
    return fig


# ---------------------------------------------------------------- 8. quarterly trend lines with CI bands
def trend_lines(estimates: pd.DataFrame, labels: Mapping[str, str], lang: str, *, waves: list[str],
                min_cell: int = 5, share_columns: frozenset[str] = frozenset()) -> go.Figure:
    """One panel per (instrument, indicator): the estimate by wave with its CI as a band."""
    rows = _rows(estimates)
    series = list(dict.fromkeys((str(r["instrument"]), str(r["indicator"])) for r in rows))
    titles = []
    for inst, ind in series:
        first = next(r for r in rows if str(r["instrument"]) == inst and str(r["indicator"]) == ind)
        titles.append(wrap(f"{label_of(first, lang, labels)}（{labels.get('instrument:' + inst, inst)}）"
                           if lang == "zh" else
                           f"{label_of(first, lang, labels)} ({labels.get('instrument:' + inst, inst)})", 26, 2))
    xs = [labels.get(f"wave_short:{w}", w) for w in waves]
    fig = make_subplots(rows=max(1, len(series)), cols=1, subplot_titles=titles or None, shared_xaxes=False,
                        vertical_spacing=min(0.1, 0.45 / max(1, len(series))))
    fig.update_layout(template=THEME, height=60 + 190 * max(1, len(series)), showlegend=False)
    fig.update_annotations(font=dict(size=12), xanchor="left", x=0)
    for i, (inst, ind) in enumerate(series, start=1):
        share = ind in share_columns or any(str(r.get("stat")) == "proportion" for r in rows
                                            if str(r["indicator"]) == ind)
        scale = 100 if share else 1
        by_wave = {str(r["wave"]): r for r in rows if str(r["instrument"]) == inst and str(r["indicator"]) == ind}
        ys, lo, hi, hv = [], [], [], []
        colour = INSTRUMENT_COLOURS.get(inst, PALETTE[0])
        for w, x in zip(waves, xs):
            r = by_wave.get(w)
            sup = r is not None and is_suppressed(r, min_cell)
            v = None if r is None or sup else _num(r.get("estimate"))
            ys.append(None if v is None else v * scale)
            lo.append(None if v is None or _num(r.get("ci_low")) is None else _num(r.get("ci_low")) * scale)
            hi.append(None if v is None or _num(r.get("ci_high")) is None else _num(r.get("ci_high")) * scale)
            hv.append(hover(f"{titles[i - 1].replace('<br>', '')} · {x}", lang, v, r.get("ci_low") if r else None,
                            r.get("ci_high") if r else None, r.get("n") if r else None, share=share,
                            suppressed=sup, min_cell=min_cell))
            if sup:
                _suppressed_note(fig, lang, min_cell, x, 0.08, xref=f"x{i if i > 1 else ''}",
                                 yref=f"y{i if i > 1 else ''} domain", short=True)
        band_x, band_y = _band(xs, lo, hi)
        fig.add_trace(go.Scatter(x=band_x, y=band_y, fill="toself", mode="lines", line=dict(width=0),
                                 fillcolor=_rgba(colour, 0.18), hoverinfo="skip", showlegend=False), row=i, col=1)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", connectgaps=False, line=dict(color=colour),
                                 marker=dict(size=8, color=colour), hovertext=hv, hoverinfo="text",
                                 name=esc(labels.get(f"instrument:{inst}", inst))), row=i, col=1)
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=xs, row=i, col=1)
        if share:
            fig.update_yaxes(ticksuffix="%", row=i, col=1)
    return fig


def _band(xs: list, lo: list, hi: list) -> tuple[list, list]:
    """Polygons around each run of waves that has a CI, separated by None (plotly fills each)."""
    out_x, out_y, run = [], [], []
    for x, a, b in list(zip(xs, lo, hi)) + [(None, None, None)]:
        if a is not None and b is not None:
            run.append((x, a, b))
            continue
        if run:
            if out_x:
                out_x.append(None)
                out_y.append(None)
            out_x += [p[0] for p in run] + [p[0] for p in reversed(run)]
            out_y += [p[2] for p in run] + [p[1] for p in reversed(run)]
            run = []
    return out_x, out_y


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


# ---------------------------------------------------------------- 9. wellbeing bands
def wellbeing_bands(estimates: pd.DataFrame, labels: Mapping[str, str], lang: str, *, waves: list[str],
                    min_cell: int = 5, low_level: str = "1") -> go.Figure:
    """100% bars per wave: share in the low-wellbeing band (level `low_level`) and the rest."""
    rows = [r for r in _rows(estimates) if _level_str(r.get("level")) == low_level]
    by_wave = {str(r["wave"]): r for r in rows}
    shown = [w for w in waves if w in by_wave]
    ys = [labels.get(f"wave_short:{w}", w) for w in shown]
    fig = _figure(130 + 40 * len(ys), barmode="stack", xaxis=dict(range=[0, 100], ticksuffix="%"),
                  yaxis=dict(autorange="reversed", categoryorder="array", categoryarray=ys))
    for key, colour, flip in (("band_low", NEGATIVE[0], False), ("band_ok", POSITIVE[1], True)):
        xs, hv = [], []
        for w, y in zip(shown, ys):
            r = by_wave[w]
            sup = is_suppressed(r, min_cell)
            v, lo, hi = (_num(r.get(c)) for c in ("estimate", "ci_low", "ci_high"))
            if flip and not sup and v is not None:
                v, lo, hi = 1 - v, (None if hi is None else 1 - hi), (None if lo is None else 1 - lo)
            v = None if sup else v
            xs.append(None if v is None else v * 100)
            hv.append(hover(f"{y} · {text(key, lang)}", lang, v, lo, hi, r.get("n"), share=True,
                            suppressed=sup, min_cell=min_cell))
        fig.add_trace(go.Bar(x=xs, y=ys, orientation="h", name=esc(text(key, lang)), marker=dict(color=colour),
                             hovertext=hv, hoverinfo="text", text=[None if x is None else f"{x:.0f}%" for x in xs],
                             textposition="inside", insidetextanchor="middle"))
    for w, y in zip(shown, ys):
        if is_suppressed(by_wave[w], min_cell):
            _suppressed_note(fig, lang, min_cell, 2, y)
    return fig


# ---------------------------------------------------------------- 10. outputs against annual targets
MEASURES = ("activities", "attendances", "people")


def outputs_vs_targets(services: pd.DataFrame, labels: Mapping[str, str], lang: str, *,
                       expected_share: float | None = None, min_cell: int = 5) -> go.Figure:
    """Completion of each service line's annual targets (cumulative rows), one bar per measure."""
    rows = _rows(services)
    cats = [wrap(labels.get(f"line:{r['service_line']}", r["service_line"]), 8, 2) for r in rows]
    fig = _figure(130 + 78 * len(rows), barmode="group", bargap=0.22,
                  xaxis=dict(ticksuffix="%", rangemode="tozero"),
                  yaxis=dict(autorange="reversed", categoryorder="array", categoryarray=cats))
    colours = dict(zip(MEASURES, (PALETTE[0], PALETTE[1], PALETTE[2])))
    for m in MEASURES:
        xs, hv = [], []
        for r, cat in zip(rows, cats):
            count, target = _num(r.get(m)), _num(r.get(f"target_{m}"))
            sup = bool(r.get(f"suppressed_{m}")) or (m != "activities" and count is not None and 0 < count < min_cell)
            share = None if sup or count is None or not target else count / target
            xs.append(None if share is None else round(share * 100, 6))
            hv.append(hover(f"{labels.get('line:' + str(r['service_line']), r['service_line'])} · {text(m, lang)}",
                            lang, suppressed=sup, min_cell=min_cell,
                            extra=[] if sup else [text("of_target", lang, count=fmt(count, digits=0),
                                                       target=fmt(target, digits=0), share=fmt(share, True, 0))]))
            if sup:
                _suppressed_note(fig, lang, min_cell, 0, cat)
        fig.add_trace(go.Bar(x=xs, y=cats, orientation="h", name=esc(text(m, lang)),
                             marker=dict(color=colours[m]), hovertext=hv, hoverinfo="text"))
    fig.add_vline(x=100, line=dict(color="#222222", width=1.5))
    if expected_share is not None:
        fig.add_vline(x=expected_share * 100, line=dict(color="#555555", width=1, dash="dash"),
                      annotation=dict(text=esc(text("expected", lang, share=fmt(expected_share, True, 0))),
                                      font=dict(size=11, color="#555555"), yanchor="bottom"),
                      annotation_position="top")
    return fig
