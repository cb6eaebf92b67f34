"""The report as a list of blocks (paragraphs, tables, charts) and the helpers the sections share.

Charts are numbered in the order the sections add them (`chart-01`, `chart-02`, ...), so the same context
gives the same ids; a figure is serialised with sorted keys and with `<`, `>` and `&` written as JSON
escapes, so no text inside it can close the <script> element that carries it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines.charts import is_suppressed
from pipelines.codebook import Codebook
from pipelines.frames import records
from pipelines.indicators import Outcome, outcomes_for
from pipelines.report.context import ReportContext
from pipelines.report.text import Strings, count, interval, label_map, number, short, value

if TYPE_CHECKING:
    import plotly.graph_objects as go

INSTRUMENT_ORDER = ("parent", "child", "community", "activity")
SCOPE_ORDER = {"panel": 0, "cross_section": 1, "activity": 2}


@dataclass
class Table:
    caption: str
    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool] = field(default_factory=list)


def _plain(obj: Any) -> Any:
    """JSON-ready copy: numpy → Python, NaN → null, dict keys as given (sorted on dump)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_plain(v) for v in obj.tolist()]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return None if math.isnan(f) or math.isinf(f) else f
    if obj is pd.NA:
        return None
    return obj


def figure_json(fig: dict | go.Figure) -> str:
    """The figure (a chart's dicts, `charts.<kind>.spec(...)`, or a plotly Figure) as JSON text safe inside
    <script type="application/json">: sorted keys, no raw < > &."""
    spec = fig if isinstance(fig, dict) else fig.to_plotly_json()
    text = json.dumps(_plain(spec), sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


class Doc:
    """Shared state while the sections of one language are built."""

    def __init__(self, ctx: ReportContext, tables: dict[str, pd.DataFrame], lang: str):
        self.ctx, self.tables, self.lang = ctx, tables, lang
        self.T = Strings(lang)
        self.labels = label_map(ctx.config, ctx.books, lang)
        self.min_cell = ctx.min_cell
        self.sup = self.T("chart.suppressed", min_cell=self.min_cell)
        self.n_charts = 0
        self.alpha = 1 - ctx.config.thresholds.confidence
        self.wave_order = [w.id for w in ctx.config.waves if w.id in ctx.waves] + \
            [w for w in ctx.waves if w not in {x.id for x in ctx.config.waves}]
        self.baseline = next((w.id for w in ctx.config.waves if w.kind == "baseline" and w.id in ctx.waves), None)
        self.quarter = ctx.quarter if ctx.quarter in self.wave_order else (self.wave_order[-1] if self.wave_order else ctx.quarter)
        self.books = sorted(ctx.books.items(), key=lambda kv: (INSTRUMENT_ORDER.index(kv[0])
                                                               if kv[0] in INSTRUMENT_ORDER else 9, kv[0]))
        self.share_columns = frozenset(self._share_columns())
        self.ranges = self._ranges()
        self.outcome_defs: list[Outcome] = [o for _, book in self.books for o in outcomes_for(book, ctx.config)]
        self._shares: dict[str, pd.DataFrame] = {}
        self._outcome_views: dict[tuple[str, str | None], pd.DataFrame] = {}

    # ------------------------------------------------------------ blocks
    def chart(self, title: str, takeaway: str, fig: dict | go.Figure, table: Table) -> dict:
        self.n_charts += 1
        height = fig["layout"].get("height") if isinstance(fig, dict) else fig.layout.height
        return {"kind": "chart", "id": f"chart-{self.n_charts:02d}", "title": title, "takeaway": takeaway,
                "height": int(height or 420), "json": figure_json(fig), "table": table}

    def para(self, text: str) -> dict:
        return {"kind": "para", "text": text}

    def note(self, text: str) -> dict:
        return {"kind": "note", "text": text}

    def no_data(self) -> dict:
        return self.note(self.T("meta.no_data"))

    def sub(self, text: str, anchor: str = "") -> dict:
        return {"kind": "sub", "text": text, "id": anchor}

    def table(self, table: Table) -> dict:
        return {"kind": "table", "table": table}

    # ------------------------------------------------------------ words
    def inst(self, inst: str) -> str:
        return self.labels.get(f"instrument:{inst}", inst)

    def wave(self, wave: str, short_form: bool = False) -> str:
        return self.labels.get(f"wave_short:{wave}" if short_form else f"wave:{wave}", wave)

    def line(self, lid: str) -> str:
        return self.labels.get(f"line:{lid}", lid)

    def label(self, row: dict, column: str = "label") -> str:
        return short(str(row.get(f"{column}_{self.lang}") or row.get("indicator") or ""))

    def is_share(self, row: dict) -> bool:
        return row.get("stat") == "proportion" or str(row.get("indicator")) in self.share_columns

    def est_text(self, row: dict) -> str:
        return self.sup if is_suppressed(row, self.min_cell) else value(row.get("estimate"), self.is_share(row))

    def ci_text(self, row: dict) -> str:
        return "" if is_suppressed(row, self.min_cell) else interval(row.get("ci_low"), row.get("ci_high"),
                                                                     self.is_share(row))

    def n_text(self, n: Any, suppressed: bool = False) -> str:
        v = number(n)
        if suppressed or (v is not None and 0 < v < self.min_cell):
            return f"<{self.min_cell}"
        return count(n)

    # ------------------------------------------------------------ data helpers
    def _share_columns(self) -> set[str]:
        out = set()
        for _, book in self.books:
            for scale in book.scales.values():
                if scale.items and all(book[i].correct is not None for i in scale.items):
                    out.add(scale.score_column)
                if scale.low_cut is not None:
                    out.add(f"{scale.id}_low")
        return out

    def _ranges(self) -> dict[str, tuple[float, float]]:
        """Lowest and highest possible value of each score or item column (for honest chart axes)."""
        out: dict[str, tuple[float, float]] = {}
        for _, book in self.books:
            for q in book.answer_questions:
                if q.choices:
                    scores = [c.score for c in q.choices]
                    out[q.name] = (min(scores), max(scores))
                    if q.type == "select_multiple":
                        out[f"{q.name}_count"] = (0.0, float(len(q.choices)))
            for scale in book.scales.values():
                items = [book[i] for i in scale.items]
                if all(q.correct is not None for q in items):
                    out[scale.score_column] = (0.0, 1.0)
                    continue
                lo = [min(c.score for c in q.choices) for q in items if q.choices]
                hi = [max(c.score for c in q.choices) for q in items if q.choices]
                if not lo:
                    continue
                k = len(items) if scale.method == "sum" else 1
                span = (min(lo) * k * scale.multiplier, max(hi) * k * scale.multiplier)
                out[scale.score_column] = span
                for sub in scale.subscales:
                    out[scale.subscale_column(sub)] = (min(lo), max(hi)) if scale.method == "mean" else span
        return out

    def headline_outcomes(self, line: str | None = None) -> pd.DataFrame:
        """One comparison per indicator (the panel when it can be shown, else the cross-section), plus
        every activity pre/post test: what the charts show (the tables show every comparison).
        Computed once per document and line; callers read the frame and do not change it."""
        if ("headline", line) not in self._outcome_views:
            self._outcome_views[("headline", line)] = self._headline_outcomes(line)
        return self._outcome_views[("headline", line)]

    def _headline_outcomes(self, line: str | None) -> pd.DataFrame:
        latest = self.latest_outcomes(line)
        if latest.empty:
            return latest
        rows = records(latest)
        keep, seen = [], set()
        for i, r in enumerate(rows):
            key = (r["instrument"], r["indicator"])
            if r["scope"] == "activity":
                keep.append(i)
            elif key not in seen and (not is_outcome_suppressed(r) or not any(
                    x["instrument"] == r["instrument"] and x["indicator"] == r["indicator"]
                    and x["scope"] != "activity" and not is_outcome_suppressed(x) for x in rows)):
                seen.add(key)
                keep.append(i)
        return latest.iloc[keep].reset_index(drop=True)

    def with_instrument(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A copy whose labels are short and name the survey: 亲子沟通（家长卷） / Communication (Parents)."""
        frame = frame.copy()
        for lang in ("zh", "en"):
            who = frame["instrument"].map(lambda i: self.labels.get(f"instrument:{i}", i) if lang == self.lang else i)
            frame[f"label_{lang}"] = [f"{short(str(l))}（{w}）" if lang == "zh" else f"{short(str(l))} ({w})"
                                      for l, w in zip(frame[f"label_{lang}"], who)]
        return frame

    def wave_rank(self, wave: str) -> int:
        return self.wave_order.index(wave) if wave in self.wave_order else -1

    @cached_property
    def whole_estimates(self) -> pd.DataFrame:
        """The estimate rows of the whole population (no group breakdown): what the charts draw."""
        est = self.tables["estimates"]
        return est[est["group_var"] == ""]

    def shares(self, wave: str) -> pd.DataFrame:
        """Whole-population answer shares (stat "proportion") of one wave, kept per wave: each service line's
        Likert charts and the satisfaction section read the quarter's."""
        if wave not in self._shares:
            whole = self.whole_estimates
            self._shares[wave] = whole[(whole["wave"] == wave) & (whole["stat"] == "proportion")]
        return self._shares[wave]

    @cached_property
    def _estimate_positions(self) -> dict[tuple[str, str], np.ndarray]:
        """(instrument, indicator) → positions of its rows in `whole_estimates` (in table order)."""
        return self.whole_estimates.groupby(["instrument", "indicator"], sort=False).indices

    def key_rows(self, defs: list[Outcome]) -> pd.DataFrame:
        """Whole-population estimate rows of each outcome's headline statistic, over all waves."""
        est = self.tables["estimates"]
        whole = self.whole_estimates
        parts = []
        for o in defs:
            rows = whole.iloc[self._estimate_positions.get((o.instrument, o.column), [])]
            if o.level == "binary":
                rows = rows[(rows["stat"] == "proportion") & (rows["level"] == "1")]
            else:
                rows = rows[rows["stat"] == "mean"]
            parts.append(rows)
        return pd.concat(parts, ignore_index=True) if parts else est.iloc[0:0]

    def latest_outcomes(self, line: str | None = None) -> pd.DataFrame:
        """Per (instrument, indicator, scope, group): the comparison reaching the latest wave, from the
        baseline where there is one (quarter-on-quarter comparisons stay in outcomes.csv).
        Computed once per document and line; callers read the frame and do not change it."""
        if ("latest", line) not in self._outcome_views:
            self._outcome_views[("latest", line)] = self._latest_outcomes(line)
        return self._outcome_views[("latest", line)]

    def _latest_outcomes(self, line: str | None) -> pd.DataFrame:
        out = self.tables["outcomes"]
        if line is not None:
            out = out[out["service_line"] == line]
        if out.empty:
            return out
        # the latest post wave; for it, the comparison with the baseline before any quarter-on-quarter one
        out = out.assign(_r=out["post_wave"].map(self.wave_rank),
                         _b=(out["pre_wave"] == self.baseline) | (out["scope"] == "activity"))
        out = out.sort_values(["_r", "_b"], kind="stable").drop_duplicates(
            ["instrument", "indicator", "scope", "group"], keep="last").drop(columns=["_b"])
        lines = {l.id: i for i, l in enumerate(self.ctx.config.service_lines)}
        insts = {k: i for i, (k, _) in enumerate(self.books)}
        out = out.assign(_l=out["service_line"].map(lines).fillna(99), _i=out["instrument"].map(insts).fillna(99),
                         _s=out["scope"].map(SCOPE_ORDER).fillna(9))
        return out.sort_values(["_l", "_i", "indicator", "_s", "group"], kind="stable").drop(
            columns=["_r", "_l", "_i", "_s"]).reset_index(drop=True)

    def improved(self, row: dict) -> int:
        """+1 significantly better, -1 significantly worse, 0 otherwise (lower is better for `_low`)."""
        if is_outcome_suppressed(row):
            return 0
        p = number(row.get("p_adjusted"))
        p = number(row.get("p_value")) if p is None else p
        diff = number(row.get("diff"))
        if p is None or diff is None or p >= self.alpha or diff == 0:
            return 0
        sign = 1 if diff > 0 else -1
        return -sign if str(row.get("indicator")).endswith("_low") else sign

    def book(self, inst: str) -> Codebook | None:
        return self.ctx.books.get(inst)


def is_outcome_suppressed(row: dict) -> bool:
    flag = row.get("suppressed")
    return bool(flag) and str(flag).lower() not in ("false", "0")
