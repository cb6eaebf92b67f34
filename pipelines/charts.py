"""The report's charts: one function per kind, one theme, one palette.

Every function takes tidy frames shaped like the report's tables (docs/architecture.md), a `labels`
mapping for codes (`wave:<id>`, `wave_short:<id>`, `instrument:<id>`, `compound:<id>`, `line:<id>`, ...)
and a language, and returns a `plotly.graph_objects.Figure`; `<kind>.spec(...)` gives the same figure as plain
dicts (what the report embeds: building plotly's objects, and importing them, cost more than the rest of a
report's charts). Rules every chart keeps:

- text that reaches plotly (labels, hover, annotations) is HTML-escaped first: plotly renders a subset of
  HTML, and labels or groups can hold what respondents typed;
- a suppressed value (`suppressed` true, or n under the minimum cell) is drawn as an annotation reading
  "样本不足（n<5）" / "suppressed (n<5)" and its data point is `None`, never 0;
- hover text carries the estimate, its confidence interval and n.
"""
from __future__ import annotations

import copy
import html
import math
from functools import cache, wraps
from typing import TYPE_CHECKING, Any, Callable, Mapping

import pandas as pd

from pipelines.frames import records

if TYPE_CHECKING:
    import plotly.graph_objects as go

FONT = '"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif'
# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
NEGATIVE = ["#D55E00", "#E69F00", "#F3C88B"]          # outermost (strongest) first
POSITIVE = ["#0072B2", "#56B4E9", "#A6D3F0"]          # outermost (strongest) first
NEUTRAL = "#BDBDBD"
SEQUENTIAL = [[0.0, "#F2F7FB"], [0.5, "#7DB8E0"], [1.0, "#0B4F82"]]
INSTRUMENT_COLOURS = {"parent": "#0072B2", "child": "#E69F00", "community": "#009E73", "activity": "#CC79A7"}
SUPPRESSED_GREY = "#7A7A7A"

# every chart's layout.template: {"layout": THEME_LAYOUT} (`THEME` is the same as a plotly Template)
THEME_LAYOUT = dict(
    font=dict(family=FONT, size=13, color="#222222"), colorway=PALETTE,
    paper_bgcolor="#FFFFFF", plot_bgcolor="#FFFFFF", dragmode=False, hovermode="closest",
    margin=dict(l=8, r=16, t=28, b=8), separators=".,",
    hoverlabel=dict(font=dict(family=FONT, size=13), align="left"),
    legend=dict(orientation="h", yanchor="top", y=-0.08, xanchor="left", x=0, font=dict(size=12)),
    xaxis=dict(fixedrange=True, automargin=True, gridcolor="#E6E6E6", zeroline=False, ticks=""),
    yaxis=dict(fixedrange=True, automargin=True, gridcolor="#E6E6E6", zeroline=False, ticks=""),
)


def __getattr__(name: str) -> Any:
    if name == "THEME":   # made on first use, so that importing this module does not import plotly
        return _theme()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@cache
def _theme() -> "go.layout.Template":
    import plotly.graph_objects as go
    return go.layout.Template(layout=THEME_LAYOUT)


@cache
def _chart_strings() -> dict[str, dict[str, str]]:
    """strings.toml's `[chart]` table, from the report's own parse of the file (one parse per process)."""
    from pipelines.report.text import load_strings   # (here: pipelines.report imports this module)
    return load_strings()["chart"]


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
        width = int(width * 2.1)
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
    """A finite float, or None (missing, NaN and ±inf alike: nothing to draw)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _instruments(rows: list[dict]) -> list[str]:
    known = list(INSTRUMENT_COLOURS)
    found = list(dict.fromkeys(str(r["instrument"]) for r in rows))
    return sorted(found, key=lambda i: (known.index(i) if i in known else len(known), i))


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


# Each chart is assembled as plain dicts: {"data": [trace, ...], "layout": {...}}, exactly what plotly's
# `Figure.to_plotly_json()` gives for it. Validating (and deep-copying the theme into) every property of every
# trace cost more than the rest of a report's rendering, for the same JSON, so the report embeds the dicts and
# plotly is not even imported to make them. The chart functions themselves hand back a plotly Figure built from
# the dicts (`figure`), which validates what a caller (a notebook) changes next. tests/test_charts.py checks
# that plotly accepts every property of every chart kind and that its Figure gives back the same JSON, and
# tests/test_report.py validates every chart of a report, so a misspelt or invalid property still fails a test.
def _trace(kind: str, **props: Any) -> dict:
    """A trace as plotly writes it: its type, and the properties given (plotly drops a property set to None)."""
    return {"type": kind, **{k: v for k, v in props.items() if v is not None}}


def _bar(**props: Any) -> dict:
    return _trace("bar", **props)


def _scatter(**props: Any) -> dict:
    return _trace("scatter", **props)


def _build(traces: list[dict], layout: dict) -> dict:
    return {"data": traces, "layout": {k: v for k, v in layout.items() if v is not None}}


def _template() -> dict:
    return {"layout": copy.deepcopy(THEME_LAYOUT)}


def _figure(height: int, traces: list, **layout: Any) -> dict:
    return _build(traces, dict(template=_template(), height=height, **layout))


def figure(spec: dict) -> "go.Figure":
    """A plotly Figure of a chart's dicts (the same JSON), validating whatever is changed on it next."""
    import plotly.graph_objects as go
    fig = go.Figure(spec, _validate=False)     # (plotly copies the dicts)
    fig._validate = fig.layout._validate = True
    for trace in fig.data:
        trace._validate = True
    return fig


def _chart(build: Callable[..., dict]) -> Callable[..., "go.Figure"]:
    """A chart kind: calling it gives a plotly Figure; `.spec` (the function below) gives its plain dicts."""
    @wraps(build)
    def chart(*args: Any, **kwargs: Any) -> "go.Figure":
        return figure(build(*args, **kwargs))
    chart.spec = build
    return chart


def _suppressed_note(lang: str, min_cell: int, x: Any, y: Any, xref: str = "x", yref: str = "y",
                     short: bool = False) -> dict:
    """The annotation marking a suppressed value."""
    key = "suppressed_short" if short else "suppressed"
    return _note(esc(text(key, lang, min_cell=min_cell)), x, y, xref, yref, short)


def _annotations(notes: list[dict]) -> dict:
    """`annotations=notes` for a layout, or nothing when there are none (as a figure without any)."""
    return {"annotations": notes} if notes else {}


def _rows(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    return records(frame)


def _level_key(level: Any) -> tuple:
    v = _num(level)
    return (0, v, "") if v is not None else (1, 0.0, str(level))


def _level_str(level: Any) -> str:
    v = _num(level)
    return str(int(v)) if v is not None and v.is_integer() else str(level)


# ---------------------------------------------------------------- rows with their label above (phone-friendly)
LINE_PX, BAR_PX = 19, 22


def _rows_layout(titles: list[str], bar: int = BAR_PX, gap: int = 14) -> tuple[list[float], list[dict], int]:
    """y centres (in pixels from the top), label annotations above each row, and the total height."""
    y, centres, notes = 0, [], []
    for title in titles:
        notes.append(dict(x=0, xref="paper", y=y, yref="y", text=title, xanchor="left", yanchor="top",
                          showarrow=False, align="left", font=dict(size=12), bgcolor="rgba(255,255,255,0.9)"))
        y += (title.count("<br>") + 1) * LINE_PX + 8
        centres.append(y + bar / 2)
        y += bar + gap
    return centres, notes, max(y, 1)


def _legend_rows(names: list[str], width: int = 340) -> int:
    """How many rows a horizontal legend of these names takes on a phone (greedy packing estimate)."""
    rows, used = 1, 0
    for name in names:
        px = 44 + sum(13 if "\u2e80" <= ch <= "\uffef" else 7 for ch in name)
        if used and used + px > width:
            rows, used = rows + 1, 0
        used += px
    return rows


def _rows_figure(total: int, notes: list[dict], traces: list, legend_rows: int = 0, **layout: Any) -> dict:
    """A figure whose plot area is exactly `total` pixels high, so one y unit is one pixel."""
    top = 10 + legend_rows * 24
    return _figure(total + top + 34, traces, margin=dict(l=6, r=10, t=top, b=34), annotations=notes,
                   legend=dict(orientation="h", x=0, xanchor="left", y=1, yanchor="bottom", traceorder="normal"),
                   yaxis=dict(range=[total, 0], showticklabels=False, showgrid=False, zeroline=False,
                              automargin=False), **layout)


# ---------------------------------------------------------------- 1. Likert items: diverging stacked bars
@_chart
def likert_bars(estimates: pd.DataFrame, labels: Mapping[str, str], lang: str, *, min_cell: int = 5,
                item_label: str = "label") -> dict:
    """One bar per item (rows of `indicator`), its answer shares split around the neutral point; the
    lower half of the scale to the left of zero, the upper half to the right, a neutral option halved."""
    rows = _rows(estimates)
    items = list(dict.fromkeys(str(r["indicator"]) for r in rows))
    levels = sorted({_level_str(r["level"]) for r in rows}, key=_level_key)
    k = len(levels)
    n_neg, neutral = k // 2, (levels[k // 2] if k % 2 else None)
    level_label = {lv: lv for lv in levels}
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
    centres, notes, total = _rows_layout([wrap(item_text[i], 24, 3) for i in items])

    def colour(i: int) -> str:
        if i < n_neg:
            return NEGATIVE[min(i, 2)]
        if neutral is not None and i == n_neg:
            return NEUTRAL
        return POSITIVE[min(k - 1 - i, 2)]

    def trace(lv: str, i: int, factor: float, shown: bool) -> dict:
        xs, hv = [], []
        for item in items:
            r = cells.get((item, lv))
            v = None if r is None or item_sup[item] else _num(r.get("estimate"))
            xs.append(None if v is None else round(v * 100 * factor, 6))
            hv.append(hover(f"{item_text[item]} · {level_label[lv]}", lang, v,
                            r.get("ci_low") if r else None, r.get("ci_high") if r else None,
                            item_n.get(item), share=True, suppressed=item_sup[item], min_cell=min_cell))
        return _bar(x=xs, y=centres, width=BAR_PX, orientation="h", name=esc(level_label[lv]), legendgroup=lv,
                    showlegend=shown, legendrank=i, marker=dict(color=colour(i), line=dict(width=0)),
                    hovertext=hv, hoverinfo="text")

    order: list[tuple[str, int, float, bool]] = []
    if neutral is not None:   # the neutral option straddles zero: half on each side
        order += [(neutral, n_neg, -0.5, True), (neutral, n_neg, 0.5, False)]
    for step in range(max(n_neg, k - n_neg)):   # then outwards, so the strongest answers sit at the ends
        if step < n_neg:
            order.append((levels[n_neg - 1 - step], n_neg - 1 - step, -1.0, True))
        i = n_neg + (1 if neutral is not None else 0) + step
        if i < k:
            order.append((levels[i], i, 1.0, True))
    traces = [trace(lv, i, factor, shown) for lv, i, factor, shown in order]
    notes += [_suppressed_note(lang, min_cell, -98, y) for item, y in zip(items, centres) if item_sup[item]]
    return _rows_figure(total, notes, traces, legend_rows=_legend_rows([level_label[lv] for lv in levels]),
                        barmode="relative",
                        xaxis=dict(range=[-100, 100], tickvals=[-100, -50, 0, 50, 100],
                                   ticktext=["100%", "50%", "0", "50%", "100%"], zeroline=True,
                                   zerolinecolor="#888888"))


# ---------------------------------------------------------------- 2. needs ranking with CIs
@_chart
def needs_ranking(needs: pd.DataFrame, labels: Mapping[str, str], lang: str, *, min_cell: int = 5) -> dict:
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
    traces, notes = [], []
    for inst in _instruments(rows):
        sub = [r for r in rows if str(r["instrument"]) == inst]
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
        traces.append(_bar(x=xs, y=[ys[o] for o in options], orientation="h",
                           name=esc(labels.get(f"instrument:{inst}", inst)),
                           marker=dict(color=INSTRUMENT_COLOURS.get(str(inst), PALETTE[4])),
                           error_x=dict(type="data", array=plus, arrayminus=minus, color="#444", thickness=1),
                           hovertext=hv, hoverinfo="text"))
    return _figure(int(120 + 26 * len(options) * (1 + n_inst) / 1.4), traces,
                   barmode="group", bargap=0.25, xaxis=dict(ticksuffix="%", rangemode="tozero"),
                   yaxis=dict(autorange="reversed", categoryorder="array", categoryarray=list(ys.values())),
                   **_annotations([_suppressed_note(lang, min_cell, 0, y) for y in dict.fromkeys(notes)]))


# ---------------------------------------------------------------- 3. compound × need heatmap
@_chart
def need_heatmap(cells: pd.DataFrame, labels: Mapping[str, str], lang: str, *, min_cell: int = 5) -> dict:
    """Share naming each need (rows) in each compound (columns); suppressed cells left blank and marked."""
    rows = _rows(cells)
    needs = list(dict.fromkeys(label_of(r, lang, labels, "option_label") for r in rows))
    groups = list(dict.fromkeys(str(r["group"]) for r in rows))
    xs = [wrap(labels.get(f"compound:{g}", g), 2, 3) for g in groups]
    ys = [wrap(o, 9, 2) for o in needs]
    z = [[None] * len(groups) for _ in needs]
    tx = [[""] * len(groups) for _ in needs]
    hv = [[""] * len(groups) for _ in needs]
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
    heatmap = _trace("heatmap", z=z, x=xs, y=ys, text=tx, texttemplate="%{text}", textfont=dict(size=11), hovertext=hv,
                         hoverinfo="text", colorscale=SEQUENTIAL, zmin=0, zmax=100, xgap=2, ygap=2,
                         hoverongaps=True, showscale=False)
    return _figure(150 + 44 * len(needs), [heatmap], margin=dict(t=84, l=8, r=8, b=8),
                   xaxis=dict(side="top", tickangle=0, tickfont=dict(size=11)),
                   yaxis=dict(autorange="reversed", tickfont=dict(size=12)))


# ---------------------------------------------------------------- 4. sample versus population
@_chart
def composition_bars(composition: pd.DataFrame, labels: Mapping[str, str], lang: str, *,
                     min_cell: int = 5) -> dict:
    """Per variable level: sample share, weighted share and population share side by side."""
    rows = _rows(composition)
    cats = [wrap(f"{labels.get('var:' + str(r['variable']), r['variable'])}: "
                 f"{labels.get(str(r['variable']) + ':' + str(r['level']), r['level'])}", 14, 2) for r in rows]
    traces = []
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
        traces.append(_bar(x=xs, y=cats, orientation="h", name=esc(text(key, lang)),
                           marker=dict(color=colour), hovertext=hv, hoverinfo="text"))
    notes = [_suppressed_note(lang, min_cell, 0, cat) for r, cat in zip(rows, cats)
             if is_suppressed(r, min_cell, "sample_n")]
    return _figure(120 + 62 * len(rows), traces, barmode="group", bargap=0.2, bargroupgap=0.05,
                   xaxis=dict(ticksuffix="%", rangemode="tozero"),
                   yaxis=dict(autorange="reversed", categoryorder="array", categoryarray=list(dict.fromkeys(cats))),
                   **_annotations(notes))


# ---------------------------------------------------------------- 5. data-quality funnel
@_chart
def funnel_chart(funnel: pd.DataFrame, labels: Mapping[str, str], lang: str) -> dict:
    """Rows remaining after each cleaning rule (read → − rule … → kept), grouped bars per instrument."""
    rows = _rows(funnel)
    steps = list(dict.fromkeys(str(r["rule"]) for r in sorted(rows, key=lambda r: _num(r.get("step")) or 0)))
    steps = [s for s in steps if s not in ("read", "kept")]
    names = [wrap(labels.get("rule:read", "read"), 10, 2)] + \
        [wrap("− " + labels.get(f"rule:{s}", s), 10, 2) for s in steps] + [wrap(labels.get("rule:kept", "kept"), 10, 2)]
    insts = _instruments(rows)
    traces = []
    for inst in insts:
        sub = {str(r["rule"]): _num(r.get("rows")) or 0 for r in rows if str(r["instrument"]) == inst}
        remaining = sub.get("read", 0)
        values, hv = [remaining], [hover(labels.get("rule:read", "read"), lang, n=remaining)]
        for s in steps:
            removed = sub.get(s, 0)
            remaining -= removed
            values.append(remaining)
            hv.append(hover(labels.get(f"rule:{s}", s), lang, n=remaining,
                            extra=[text("removed", lang, n=f"{int(removed):,}")]))
        values.append(sub.get("kept", remaining))
        hv.append(hover(labels.get("rule:kept", "kept"), lang, n=values[-1]))
        traces.append(_bar(y=names, x=values, orientation="h", name=esc(labels.get(f"instrument:{inst}", inst)),
                           marker=dict(color=INSTRUMENT_COLOURS.get(str(inst), PALETTE[4])),
                           text=[f"{int(v):,}" for v in values], textposition="outside", cliponaxis=False,
                           textfont=dict(size=11), hovertext=hv, hoverinfo="text"))
    return _figure(90 + len(names) * (14 + 16 * max(1, len(insts))), traces, barmode="group", bargap=0.25,
                   yaxis=dict(autorange="reversed", categoryorder="array", categoryarray=names),
                   xaxis=dict(rangemode="tozero"), legend=dict(traceorder="normal"))


# ---------------------------------------------------------------- 6. forest plot of effect sizes
@_chart
def forest_plot(outcomes: pd.DataFrame, labels: Mapping[str, str], lang: str, *, min_cell: int = 5,
                alpha: float = 0.05) -> dict:
    """Effect size and its CI per comparison; filled markers where the adjusted p is under alpha."""
    rows = _rows(outcomes)
    titles = [wrap(f"{label_of(r, lang, labels)} · {labels.get('scope:' + str(r.get('scope')), r.get('scope'))}"
                   + (f" · {r.get('group')}" if r.get("group") else ""), 24, 2) for r in rows]
    centres, notes, total = _rows_layout(titles, bar=14, gap=10)
    traces = []
    for significant in (True, False):
        xs, ys, plus, minus, hv = [], [], [], [], []
        for r, y in zip(rows, centres):
            es, p = _num(r.get("effect_size")), _num(r.get("p_adjusted"))
            p = _num(r.get("p_value")) if p is None else p
            if _sup_outcome(r, min_cell) or es is None or (p is not None and p < alpha) != significant:
                continue
            lo, hi = _num(r.get("es_ci_low")), _num(r.get("es_ci_high"))
            xs.append(es)
            ys.append(y)
            plus.append(None if hi is None else hi - es)
            minus.append(None if lo is None else es - lo)
            hv.append(hover(label_of(r, lang, labels), lang, es, lo, hi, r.get("n_pairs") or r.get("n_post"),
                            extra=[f"{r.get('effect_size_name', '')}", text("p_value", lang, p=fmt(p, digits=3)),
                                   text("diff", lang, d=fmt(r.get("diff")))]))
        traces.append(_scatter(
            x=xs, y=ys, mode="markers", name=esc(text("significant" if significant else "not_significant", lang)),
            marker=dict(size=10, color=POSITIVE[0], symbol="circle" if significant else "circle-open",
                        line=dict(width=2, color=POSITIVE[0])),
            error_x=dict(type="data", array=plus, arrayminus=minus, color="#555555", thickness=1.5, width=4),
            hovertext=hv, hoverinfo="text"))
    notes += [_suppressed_note(lang, min_cell, 0.0, y, xref="paper") for r, y in zip(rows, centres)
              if _sup_outcome(r, min_cell)]
    return _rows_figure(total, notes, traces, legend_rows=_legend_rows([text("significant", lang),
                                                                        text("not_significant", lang)]),
                        xaxis=dict(zeroline=True, zerolinecolor="#888888", zerolinewidth=1))


def _sup_outcome(r: Mapping[str, Any], min_cell: int) -> bool:
    ns = [_num(r.get(c)) for c in ("n_pairs", "n_pre", "n_post")]
    scope = str(r.get("scope"))
    small = (scope == "panel" and ns[0] is not None and ns[0] < min_cell) or any(
        n is not None and n < min_cell for n in ns[1:])
    flag = r.get("suppressed")
    return bool(flag) and str(flag).lower() not in ("false", "0", "") or small


# ---------------------------------------------------------------- small multiples (one panel per row)
def _panels(n: int, titles: list[str], panel: int, gap: int = 46, top: int = 30, bottom: int = 40,
            **layout: Any) -> tuple[dict, list[tuple[str, str]]]:
    """A layout of `n` stacked panels with their own axes and a title above each (fixed pixel sizes)."""
    n = max(1, n)
    height = top + bottom + n * panel + (n - 1) * gap
    axes, refs, annotations = {}, [], []
    for i in range(n):
        hi = 1 - (top + i * (panel + gap)) / height
        lo = hi - panel / height
        sx = "" if i == 0 else str(i + 1)
        axes[f"xaxis{sx}"] = dict(domain=[0, 1], anchor=f"y{sx}")
        axes[f"yaxis{sx}"] = dict(domain=[max(0.0, lo), min(1.0, hi)], anchor=f"x{sx}")
        refs.append((f"x{sx}", f"y{sx}"))
        if i < len(titles):
            annotations.append(dict(text=titles[i], x=0, xref="paper", y=hi, yref="paper", xanchor="left",
                                    yanchor="bottom", showarrow=False, font=dict(size=12), align="left"))
    return dict(template=_template(), height=height, annotations=annotations, **axes, **layout), refs


def _note(text_: str, x: Any, y: Any, xref: str, yref: str, short: bool) -> dict:
    return dict(x=x, y=y, xref=xref, yref=yref, text=text_, showarrow=False,
                xanchor="center" if short else "left", font=dict(size=11, color=SUPPRESSED_GREY),
                bgcolor="rgba(255,255,255,0.85)")


# ---------------------------------------------------------------- 7. pre → post dumbbells
@_chart
def dumbbell(outcomes: pd.DataFrame, labels: Mapping[str, str], lang: str, *, min_cell: int = 5,
             share_columns: frozenset[str] = frozenset(),
             ranges: Mapping[str, tuple[float, float]] | None = None) -> dict:
    """One small panel per indicator: pre mean → post mean, each on its indicator's full scale
    (`ranges[indicator]` = the lowest and highest possible score), so a small change looks small."""
    rows = _rows(outcomes)
    titles = [wrap(f"{label_of(r, lang, labels)} · {labels.get('scope:' + str(r.get('scope')), r.get('scope'))}"
                   + (f" · {r.get('group')}" if r.get("group") else ""), 26, 2) for r in rows]
    lines = max([t.count("<br>") + 1 for t in titles] or [1])
    layout, refs = _panels(len(rows), titles, panel=30, gap=30 + LINE_PX * lines, top=8 + LINE_PX * lines,
                           bottom=64, showlegend=True, legend=dict(y=0, yanchor="bottom", yref="container"))
    traces, notes = [], list(layout["annotations"])
    for i, (r, (xr, yr)) in enumerate(zip(rows, refs)):
        share = str(r.get("indicator")) in share_columns or str(r.get("level")) == "binary"
        scale = 100 if share else 1
        layout["yaxis" + xr[1:]].update(showticklabels=False, showgrid=False, range=[-1, 1])
        bounds = (0.0, 1.0) if share else (ranges or {}).get(str(r.get("indicator")))
        if bounds is not None:
            pad = (bounds[1] - bounds[0]) * 0.03
            layout["xaxis" + xr[1:]].update(range=[(bounds[0] - pad) * scale, (bounds[1] + pad) * scale])
        if share:
            layout["xaxis" + xr[1:]].update(ticksuffix="%")
        if _sup_outcome(r, min_cell):
            layout["xaxis" + xr[1:]].update(showticklabels=False)
            notes.append(_note(esc(text("suppressed", lang, min_cell=min_cell)), 0.01, 0.5, f"{xr} domain",
                               f"{yr} domain", False))
            traces.append(_scatter(x=[None], y=[0], xaxis=xr, yaxis=yr, showlegend=False, hoverinfo="skip"))
            continue
        pre, post = _num(r.get("mean_pre")), _num(r.get("mean_post"))
        pre_w = labels.get(f"wave_short:{r.get('pre_wave')}", str(r.get("pre_wave")))
        post_w = labels.get(f"wave_short:{r.get('post_wave')}", str(r.get("post_wave")))
        traces.append(_scatter(x=[None if pre is None else pre * scale, None if post is None else post * scale],
                                 y=[0, 0], xaxis=xr, yaxis=yr, mode="lines", line=dict(color="#AAAAAA", width=4),
                                 showlegend=False, hoverinfo="skip"))
        for key, v, wave, n, colour in (("pre", pre, pre_w, r.get("n_pre"), NEGATIVE[1]),
                                        ("post", post, post_w, r.get("n_post"), POSITIVE[0])):
            extra = [f"{text('diff_ci', lang)}: {fmt(r.get('diff'), share)} "
                     f"({fmt(r.get('diff_ci_low'), share)} – {fmt(r.get('diff_ci_high'), share)})"] if key == "post" else []
            change = _num(r.get("diff")) if key == "post" else None
            label = "" if change is None else (f"{change * 100:+.1f}" if share else f"{change:+.2f}")
            traces.append(_scatter(
                x=[None if v is None else v * scale], y=[0], xaxis=xr, yaxis=yr,
                mode="markers+text" if label else "markers", text=[label] if label else None,
                textposition="middle right" if (change or 0) >= 0 else "middle left", cliponaxis=False,
                textfont=dict(size=11, color=POSITIVE[0]),
                name=esc(text(key, lang)), legendgroup=key, showlegend=i == 0,
                marker=dict(size=13, color=colour, line=dict(color="#FFFFFF", width=1)),
                hovertext=[hover(f"{label_of(r, lang, labels)} · {wave}", lang, v, n=n, share=share, extra=extra)],
                hoverinfo="text"))
    layout["annotations"] = notes
    return _build(traces, layout)


# ---------------------------------------------------------------- 8. quarterly trend lines with CI bands
@_chart
def trend_lines(estimates: pd.DataFrame, labels: Mapping[str, str], lang: str, *, waves: list[str],
                min_cell: int = 5, share_columns: frozenset[str] = frozenset()) -> dict:
    """One panel per (instrument, indicator): the estimate by wave with its CI as a band."""
    rows = _rows(estimates)
    series: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        series.setdefault((str(r["instrument"]), str(r["indicator"])), []).append(r)
    titles = []
    for (inst, _), recs in series.items():
        who = labels.get(f"instrument:{inst}", inst)
        name = label_of(recs[0], lang, labels)
        titles.append(wrap(f"{name}（{who}）" if lang == "zh" else f"{name} ({who})", 26, 2))
    xs = [labels.get(f"wave_short:{w}", w) for w in waves]
    lines = max([t.count("<br>") + 1 for t in titles] or [1])
    layout, refs = _panels(len(series), titles, panel=120, gap=30 + LINE_PX * lines, top=8 + LINE_PX * lines,
                           bottom=30, showlegend=False)
    traces, notes = [], list(layout["annotations"])
    for ((inst, ind), recs), title, (xr, yr) in zip(series.items(), titles, refs):
        share = ind in share_columns or any(str(r.get("stat")) == "proportion" for r in recs)
        scale = 100 if share else 1
        by_wave = {str(r["wave"]): r for r in recs}
        ys, lo, hi, hv = [], [], [], []
        colour = INSTRUMENT_COLOURS.get(inst, PALETTE[0])
        for w, x in zip(waves, xs):
            r = by_wave.get(w)
            sup = r is not None and is_suppressed(r, min_cell)
            v = None if r is None or sup else _num(r.get("estimate"))
            a, b = (_num(r.get("ci_low")), _num(r.get("ci_high"))) if r is not None and v is not None else (None, None)
            ys.append(None if v is None else v * scale)
            lo.append(None if a is None else a * scale)
            hi.append(None if b is None else b * scale)
            hv.append(hover(f"{title.replace('<br>', '')} · {x}", lang, v, a, b, r.get("n") if r else None,
                            share=share, suppressed=sup, min_cell=min_cell))
            if sup:
                notes.append(_note(esc(text("suppressed_short", lang, min_cell=min_cell)), x, 0.12, xr,
                                   f"{yr} domain", True))
        band_x, band_y = _band(xs, lo, hi)
        traces.append(_scatter(x=band_x, y=band_y, xaxis=xr, yaxis=yr, fill="toself", mode="lines",
                                 line=dict(width=0), fillcolor=_rgba(colour, 0.18), hoverinfo="skip",
                                 showlegend=False))
        traces.append(_scatter(x=xs, y=ys, xaxis=xr, yaxis=yr, mode="lines+markers", connectgaps=False,
                                 line=dict(color=colour), marker=dict(size=8, color=colour), hovertext=hv,
                                 hoverinfo="text", name=esc(labels.get(f"instrument:{inst}", inst))))
        layout["xaxis" + xr[1:]].update(type="category", categoryorder="array", categoryarray=xs, range=[-0.4, len(xs) - 0.6])
        if share:
            layout["yaxis" + xr[1:]].update(ticksuffix="%")
    layout["annotations"] = notes
    return _build(traces, layout)


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
@_chart
def wellbeing_bands(estimates: pd.DataFrame, labels: Mapping[str, str], lang: str, *, waves: list[str],
                    min_cell: int = 5, low_level: str = "1") -> dict:
    """100% bars per wave: share in the low-wellbeing band (level `low_level`) and the rest."""
    rows = [r for r in _rows(estimates) if _level_str(r.get("level")) == low_level]
    by_wave = {str(r["wave"]): r for r in rows}
    shown = [w for w in waves if w in by_wave]
    ys = [labels.get(f"wave_short:{w}", w) for w in shown]
    traces = []
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
        traces.append(_bar(x=xs, y=ys, orientation="h", name=esc(text(key, lang)), marker=dict(color=colour),
                           hovertext=hv, hoverinfo="text", text=[None if x is None else f"{x:.0f}%" for x in xs],
                           textposition="inside", insidetextanchor="middle"))
    notes = [_suppressed_note(lang, min_cell, 2, y) for w, y in zip(shown, ys) if is_suppressed(by_wave[w], min_cell)]
    return _figure(130 + 40 * len(ys), traces, barmode="stack", xaxis=dict(range=[0, 100], ticksuffix="%"),
                   yaxis=dict(autorange="reversed", categoryorder="array", categoryarray=ys),
                   legend=dict(traceorder="normal"), **_annotations(notes))


# ---------------------------------------------------------------- 10. outputs against annual targets
MEASURES = ("activities", "attendances", "people")


@_chart
def outputs_vs_targets(services: pd.DataFrame, labels: Mapping[str, str], lang: str, *,
                       expected_share: float | None = None, min_cell: int = 5) -> dict:
    """Completion of each service line's annual targets (cumulative rows), one bar per measure."""
    rows = _rows(services)
    cats = [wrap(labels.get(f"line:{r['service_line']}", r["service_line"]), 8, 2) for r in rows]
    traces, notes = [], []
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
                notes.append(_suppressed_note(lang, min_cell, 0, cat))
        traces.append(_bar(x=xs, y=cats, orientation="h", name=esc(text(m, lang)),
                           marker=dict(color=colours[m]), hovertext=hv, hoverinfo="text"))
    fig = _figure(130 + 78 * len(rows), traces, barmode="group", bargap=0.22,
                  xaxis=dict(ticksuffix="%", rangemode="tozero"),
                  yaxis=dict(autorange="reversed", categoryorder="array", categoryarray=cats), **_annotations(notes))
    # the full target, and where the programme should be by now: vertical lines over the whole plot, as
    # plotly's `add_vline` writes them (its annotation_position="top" label included)
    layout = fig["layout"]
    layout["shapes"] = [_vline(100, dict(color="#222222", width=1.5))]
    if expected_share is not None:
        x = expected_share * 100
        layout["shapes"].append(_vline(x, dict(color="#555555", width=1, dash="dash")))
        layout.setdefault("annotations", []).append(dict(
            text=esc(text("expected", lang, share=fmt(expected_share, True, 0))), font=dict(size=11, color="#555555"),
            x=x, xref="x", xanchor="center", y=1, yref="y domain", yanchor="bottom", showarrow=False))
    return fig


def _vline(x: float, line: dict) -> dict:
    return dict(type="line", x0=x, x1=x, xref="x", y0=0, y1=1, yref="y domain", line=line)
