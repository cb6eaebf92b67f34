"""Each chart kind on small tidy frames: the right traces and points, suppressed cells marked and never drawn
as 0, hover text with n and the CI, and respondent text escaped before it reaches plotly."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from pipelines import charts

LABELS = {"wave_short:2024-needs": "基线", "wave_short:2025Q1": "2025Q1", "wave_short:2025Q2": "2025Q2",
          "instrument:parent": "家长卷", "instrument:child": "儿童卷", "compound:a": "金尚小区",
          "compound:b": "中福城", "line:growth_space": "童梦筑家园", "line:rights": "童梦暖心行",
          "scope:panel": "追踪样本", "rule:read": "读入", "rule:kept": "保留", "rule:speeder": "作答过快",
          "var:compound": "小区", "compound:jinshang": "金尚小区"}
HOSTILE = "<script>alert(1)</script>"


def est(indicator, level, estimate, n=120, wave="2025Q2", instrument="child", suppressed=False, stat="proportion",
        label="", level_label="", group_var="", group="", **extra):
    half = 0.05 if stat == "proportion" else 2.5
    lo, hi = (estimate - half, estimate + half) if estimate == estimate else (np.nan, np.nan)
    return {"wave": wave, "instrument": instrument, "indicator": indicator, "stat": stat, "level": level,
            "group_var": group_var, "group": group, "estimate": estimate, "se": 0.02, "ci_low": lo, "ci_high": hi,
            "n": n, "deff": 1.2, "suppressed": suppressed, "label_zh": label, "label_en": label,
            "level_label_zh": level_label, "level_label_en": level_label, **extra}


def likert_frame():
    rows = []
    for item, label in (("play_1", "小区里有我可以放心玩耍的地方"), ("play_2", HOSTILE)):
        for level, share in zip("12345", (0.05, 0.10, 0.20, 0.40, 0.25)):
            rows.append(est(item, level, share, label=label, level_label=f"选项{level}"))
    for level in "12345":
        rows.append(est("play_3", level, np.nan, n=3, suppressed=True, label="小区里的游乐设施是完好、安全的",
                        level_label=f"选项{level}"))
    return pd.DataFrame(rows)


def annotations(fig):
    return [a.text for a in fig.layout.annotations]


def all_text(fig) -> str:
    return json.dumps(fig.to_plotly_json(), ensure_ascii=False, default=str)


def test_theme_palette_and_font():
    assert charts.THEME.layout.font.family.startswith('"PingFang SC"') and "Noto Sans CJK SC" in charts.FONT
    assert charts.PALETTE[:3] == ["#0072B2", "#E69F00", "#009E73"]  # Okabe–Ito


def test_likert_bars_diverge_and_mark_suppressed_items():
    fig = charts.likert_bars(likert_frame(), LABELS, "zh")
    # 5 levels → neutral split in two halves + 4 others = 6 bar traces, one bar per item each
    assert [t.type for t in fig.data] == ["bar"] * 6 and all(len(t.x) == 3 for t in fig.data)
    strongly_disagree = next(t for t in fig.data if t.legendgroup == "1")
    assert strongly_disagree.x[0] == pytest.approx(-5.0)          # lower half drawn left of zero
    assert next(t for t in fig.data if t.legendgroup == "5").x[0] == pytest.approx(25.0)
    assert sum(1 for t in fig.data if t.legendgroup == "3") == 2  # neutral halves
    # the suppressed item (third) has no bar at all — None, never 0 — and a marker saying so
    assert all(t.x[2] is None for t in fig.data)
    assert "样本不足（n&lt;5）" in annotations(fig)
    assert "样本不足" in fig.data[0].hovertext[2] and "n = " not in fig.data[0].hovertext[2]


def test_likert_hover_has_n_and_ci_and_labels_are_escaped():
    fig = charts.likert_bars(likert_frame(), LABELS, "en")
    hv = next(t for t in fig.data if t.legendgroup == "4").hovertext[0]
    assert "n = 120" in hv and "95% CI: 35.0% – 45.0%" in hv and "40.0%" in hv
    text = all_text(fig)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_needs_ranking_bars_with_cis():
    rows = []
    for inst in ("parent", "child"):
        for i, (opt, share) in enumerate((("心理健康活动", 0.7), ("安全教育", 0.5), (HOSTILE, 0.3))):
            rows.append({"wave": "2024-needs", "instrument": inst, "group_var": "", "group": "", "rank": i + 1,
                         "indicator": f"needs__{i + 1}", "option_label_zh": opt, "option_label_en": opt,
                         "estimate": share, "ci_low": share - 0.04, "ci_high": share + 0.06, "n": 200,
                         "suppressed": False})
    rows[-1].update(estimate=np.nan, ci_low=np.nan, ci_high=np.nan, n=2, suppressed=True)
    fig = charts.needs_ranking(pd.DataFrame(rows), LABELS, "zh")
    assert len(fig.data) == 2 and all(len(t.x) == 3 for t in fig.data)
    parent = fig.data[0]
    assert parent.x[0] == pytest.approx(70) and parent.error_x.array[0] == pytest.approx(6)
    assert parent.error_x.arrayminus[0] == pytest.approx(4)
    assert fig.data[1].x[2] is None and "样本不足（n&lt;5）" in annotations(fig)
    assert "n = 200" in parent.hovertext[0] and "95%置信区间: 66.0% – 76.0%" in parent.hovertext[0]
    assert "<script>" not in all_text(fig)


def test_need_heatmap_leaves_suppressed_cells_blank():
    rows = [est("needs__1", "1", 0.6, group_var="compound", group="a", option_label_zh="心理健康活动",
                option_label_en="Mental health"),
            est("needs__1", "1", np.nan, n=3, suppressed=True, group_var="compound", group="b",
                option_label_zh="心理健康活动", option_label_en="Mental health"),
            est("needs__2", "1", 0.0, group_var="compound", group="a", option_label_zh="安全教育",
                option_label_en="Safety"),
            est("needs__2", "1", 0.4, group_var="compound", group=HOSTILE, option_label_zh="安全教育",
                option_label_en="Safety")]
    fig = charts.need_heatmap(pd.DataFrame(rows), LABELS, "zh")
    (heat,) = fig.data
    assert len(heat.z) == 2 and len(heat.z[0]) == 3
    assert heat.z[0][0] == pytest.approx(60) and heat.z[0][1] is None   # suppressed: a gap, not 0
    assert heat.z[1][0] == 0                                           # a real zero stays a zero
    assert heat.text[0][1] == "n&lt;5" and "样本不足" in heat.hovertext[0][1]
    ticks = "".join(heat.x).replace("<br>", "")
    assert "<script>" not in all_text(fig) and ticks.startswith("金尚小区中福城&lt;s") and "<" not in ticks


def test_composition_bars():
    rows = [{"wave": "2025Q2", "instrument": "child", "variable": "compound", "level": "jinshang", "sample_n": 40,
             "sample_share": 0.2, "weighted_share": 0.17, "population_share": 0.17, "suppressed": False},
            {"wave": "2025Q2", "instrument": "child", "variable": "compound", "level": "yulu", "sample_n": 3,
             "sample_share": np.nan, "weighted_share": np.nan, "population_share": 0.1, "suppressed": True}]
    fig = charts.composition_bars(pd.DataFrame(rows), LABELS, "zh")
    assert len(fig.data) == 3 and all(len(t.x) == 2 for t in fig.data)
    assert fig.data[0].x[1] is None and fig.data[1].x[1] is None and fig.data[2].x[1] == pytest.approx(10)
    assert "样本不足（n&lt;5）" in annotations(fig) and "n = 40" in fig.data[0].hovertext[0]


def test_funnel_counts_down_to_kept():
    rows = [{"wave": "2025Q2", "instrument": "parent", "step": 0, "rule": "read", "rows": 110},
            {"wave": "2025Q2", "instrument": "parent", "step": 1, "rule": "speeder", "rows": 8},
            {"wave": "2025Q2", "instrument": "parent", "step": 2, "rule": HOSTILE, "rows": 2},
            {"wave": "2025Q2", "instrument": "parent", "step": 3, "rule": "kept", "rows": 100}]
    fig = charts.funnel_chart(pd.DataFrame(rows), LABELS, "zh")
    (bars,) = fig.data
    assert list(bars.x) == [110, 102, 100, 100] and len(bars.y) == 4
    assert "本步剔除 8 份" in bars.hovertext[1] and "<script>" not in all_text(fig)


def outcome(indicator, es, p, suppressed=False, **extra):
    return {"instrument": "child", "indicator": indicator, "scope": "panel", "group": "", "pre_wave": "2024-needs",
            "post_wave": "2025Q2", "level": "interval", "n_pre": 200, "n_post": 180, "n_pairs": 150,
            "mean_pre": 3.0, "mean_post": 3.0 + es / 2, "diff": es / 2, "diff_ci_low": es / 2 - 0.1,
            "diff_ci_high": es / 2 + 0.1, "test": "paired_t", "p_value": p, "p_adjusted": p,
            "effect_size_name": "cohen_dz", "effect_size": es, "es_ci_low": es - 0.15, "es_ci_high": es + 0.2,
            "suppressed": suppressed, "label_zh": indicator, "label_en": indicator, **extra}


def test_forest_plot_splits_significance_and_marks_suppressed():
    rows = [outcome("safe_play_score", 0.4, 0.001), outcome("voice_score", 0.05, 0.6),
            outcome("help_willing", np.nan, np.nan, suppressed=True, n_pairs=3)]
    fig = charts.forest_plot(pd.DataFrame(rows), LABELS, "zh")
    sig, ns = fig.data
    assert list(sig.x) == [0.4] and list(ns.x) == [0.05]
    assert sig.marker.symbol == "circle" and ns.marker.symbol == "circle-open"
    assert sig.error_x.array[0] == pytest.approx(0.2) and sig.error_x.arrayminus[0] == pytest.approx(0.15)
    assert "n = 150" in sig.hovertext[0] and "0.25 – 0.60" in sig.hovertext[0]
    assert "样本不足（n&lt;5）" in annotations(fig)


def test_dumbbell_one_panel_per_indicator_on_its_full_scale():
    rows = [outcome("safe_play_score", 0.4, 0.001), outcome("participation", 0.3, 0.01, level="binary",
                                                            mean_pre=0.3, mean_post=0.45),
            outcome("help_willing", np.nan, np.nan, suppressed=True)]
    fig = charts.dumbbell(pd.DataFrame(rows), LABELS, "zh", ranges={"safe_play_score": (1.0, 5.0)})
    markers = [t for t in fig.data if "markers" in (t.mode or "")]
    assert len(markers) == 4                                     # pre + post for the two shown
    assert list(markers[1].text) == ["+0.20"] and list(markers[3].text) == ["+15.0"]   # the change, on the dot
    assert fig.layout.xaxis.range[0] < 1 and fig.layout.xaxis.range[1] > 5
    assert markers[2].x[0] == pytest.approx(30) and fig.layout.xaxis2.ticksuffix == "%"
    assert "样本不足（n&lt;5）" in annotations(fig)
    assert not any(t.x and 0 in [x for x in t.x if x is not None] for t in fig.data)


def test_trend_lines_with_ci_bands_and_gaps():
    waves = ["2024-needs", "2025Q1", "2025Q2"]
    rows = [est("who5_score", "", 50.0, wave="2024-needs", stat="mean", label="WHO-5"),
            est("who5_score", "", 55.0, wave="2025Q1", stat="mean", label="WHO-5"),
            est("who5_score", "", np.nan, n=4, wave="2025Q2", stat="mean", suppressed=True, label="WHO-5"),
            est("participation", "1", 0.3, wave="2024-needs", instrument="parent", label="参与")]
    fig = charts.trend_lines(pd.DataFrame(rows), LABELS, "zh", waves=waves)
    assert len(fig.data) == 4                                   # band + line per series
    band, line = fig.data[0], fig.data[1]
    assert list(line.y) == [50.0, 55.0, None]                   # suppressed wave is a gap, not 0
    assert band.fill == "toself" and None not in band.y and len(band.x) == 4
    assert "n&lt;5" in annotations(fig)
    assert "n = 120" in line.hovertext[0] and "47.5 – 52.5" in line.hovertext[0]
    assert fig.data[3].y[0] == pytest.approx(30) and fig.layout.yaxis2.ticksuffix == "%"


def test_wellbeing_bands_complement():
    waves = ["2024-needs", "2025Q1", "2025Q2"]
    rows = [est("who5_low", "1", 0.3, wave="2024-needs"), est("who5_low", "1", 0.2, wave="2025Q1"),
            est("who5_low", "1", np.nan, n=2, wave="2025Q2", suppressed=True)]
    fig = charts.wellbeing_bands(pd.DataFrame(rows), LABELS, "zh", waves=waves)
    low, ok = fig.data
    assert low.x[0] == pytest.approx(30) and ok.x[0] == pytest.approx(70) and low.x[2] is None and ok.x[2] is None
    assert "95%置信区间: 65.0% – 75.0%" in ok.hovertext[0] and "样本不足（n&lt;5）" in annotations(fig)


def test_outputs_against_targets_suppress_small_counts():
    rows = [{"wave": "cumulative", "service_line": "growth_space", "activities": 12, "attendances": 600,
             "people": 220, "target_activities": 24, "target_attendances": 1200, "target_people": 400},
            {"wave": "cumulative", "service_line": "rights", "activities": 3, "attendances": 3, "people": 3,
             "target_activities": 12, "target_attendances": 240, "target_people": 18}]
    fig = charts.outputs_vs_targets(pd.DataFrame(rows), LABELS, "zh", expected_share=0.5)
    acts, atts, people = fig.data
    assert acts.x[0] == pytest.approx(50) and atts.x[0] == pytest.approx(50) and people.x[0] == pytest.approx(55)
    assert acts.x[1] == pytest.approx(25)                       # activities are not about people: shown
    assert atts.x[1] is None and people.x[1] is None            # 3 children in difficulty: never shown
    assert "样本不足" in people.hovertext[1] and "3" not in people.hovertext[1].replace("n&lt;5", "")
    assert "累计 600 / 年度目标 1,200（50%）" in atts.hovertext[0]
    assert any("按时间进度应完成 50%" in (a or "") for a in annotations(fig))


def test_wrap_and_escape():
    assert charts.esc("<b>&") == "&lt;b&gt;&amp;"
    assert charts.wrap("小区里有我可以放心玩耍的地方", 6).count("<br>") == 2
    wrapped = charts.wrap("<script>alert(1)</script>", 8)
    assert "<script" not in wrapped and "&lt;" in wrapped and set(wrapped.replace("<br>", "")) >= set("&;lt")


def _every_chart_kind(spec: bool = False) -> dict[str, object]:
    """One figure of each chart kind, from small frames with a suppressed row and hostile text (with
    `spec`, each as its plain dicts: `charts.<kind>.spec(...)`, what the report embeds)."""

    def make(kind, *args, **kwargs):
        return kind.spec(*args, **kwargs) if spec else kind(*args, **kwargs)

    waves = ["2024-needs", "2025Q1", "2025Q2"]
    needs = pd.DataFrame([{"wave": "2024-needs", "instrument": inst, "group_var": "", "group": "", "rank": 1,
                           "indicator": "needs__1", "option_label_zh": HOSTILE, "option_label_en": HOSTILE,
                           "estimate": share, "ci_low": share - 0.04, "ci_high": share + 0.06, "n": n,
                           "suppressed": n < 5} for inst, share, n in (("parent", 0.7, 200), ("child", 0.5, 2))])
    cells = pd.DataFrame([est("needs__1", "1", 0.6, group_var="compound", group="a",
                              option_label_zh="心理健康活动", option_label_en="Mental health"),
                          est("needs__1", "1", np.nan, n=3, suppressed=True, group_var="compound", group="b",
                              option_label_zh="心理健康活动", option_label_en="Mental health")])
    composition = pd.DataFrame([{"wave": "2025Q2", "instrument": "child", "variable": "compound", "level": lv,
                                 "sample_n": n, "sample_share": share, "weighted_share": share,
                                 "population_share": 0.1, "suppressed": n < 5}
                                for lv, n, share in (("jinshang", 40, 0.2), ("yulu", 3, np.nan))])
    funnel = pd.DataFrame([{"wave": "2025Q2", "instrument": "parent", "step": i, "rule": rule, "rows": rows}
                           for i, (rule, rows) in enumerate((("read", 110), ("speeder", 8), ("kept", 102)))])
    outcomes = pd.DataFrame([outcome("safe_play_score", 0.4, 0.001), outcome("voice_score", 0.05, 0.6),
                             outcome("help_willing", np.nan, np.nan, suppressed=True, n_pairs=3)])
    trend = pd.DataFrame([est("who5_score", "", 50.0, wave="2024-needs", stat="mean"),
                          est("who5_score", "", np.nan, n=4, wave="2025Q2", stat="mean", suppressed=True)])
    bands = pd.DataFrame([est("who5_low", "1", 0.3, wave="2024-needs"),
                          est("who5_low", "1", np.nan, n=2, wave="2025Q2", suppressed=True)])
    services = pd.DataFrame([{"wave": "cumulative", "service_line": "rights", "activities": 3, "attendances": 3,
                              "people": 3, "target_activities": 12, "target_attendances": 240, "target_people": 18}])
    return {
        "likert_bars": make(charts.likert_bars, likert_frame(), LABELS, "zh"),
        "needs_ranking": make(charts.needs_ranking, needs, LABELS, "en"),
        "need_heatmap": make(charts.need_heatmap, cells, LABELS, "zh"),
        "composition_bars": make(charts.composition_bars, composition, LABELS, "zh"),
        "funnel_chart": make(charts.funnel_chart, funnel, LABELS, "en"),
        "forest_plot": make(charts.forest_plot, outcomes, LABELS, "zh"),
        "dumbbell": make(charts.dumbbell, outcomes, LABELS, "en", ranges={"safe_play_score": (1.0, 5.0)}),
        "trend_lines": make(charts.trend_lines, trend, LABELS, "zh", waves=waves),
        "wellbeing_bands": make(charts.wellbeing_bands, bands, LABELS, "en", waves=waves),
        "outputs_vs_targets": make(charts.outputs_vs_targets, services, LABELS, "zh", expected_share=0.5),
    }


def test_every_chart_kind_passes_plotly_validation():
    """The charts are assembled with plotly's validation off (for speed); plotly must still accept each
    one's JSON property by property, and a figure handed to a notebook validates what is changed next."""
    for kind, fig in _every_chart_kind().items():
        assert isinstance(fig, go.Figure), kind
        try:
            go.Figure(fig.to_plotly_json())
        except ValueError as exc:  # plotly names the invalid property
            pytest.fail(f"{kind}: {exc}")
        with pytest.raises(ValueError):
            fig.update_layout(not_a_layout_property=1)
        with pytest.raises(ValueError):
            fig.update_traces(not_a_trace_property=1)


def test_chart_dicts_are_plotlys_json():
    """The report embeds each chart's plain dicts without plotly: plotly's Figure of them gives back the same
    JSON (nothing dropped, renamed or coerced), and so does the theme as a plotly Template."""
    from pipelines.report.document import figure_json
    figures = _every_chart_kind()
    for kind, spec in _every_chart_kind(spec=True).items():
        assert figure_json(spec) == figure_json(go.Figure(spec)) == figure_json(figures[kind]), kind
    assert charts.THEME.to_plotly_json() == charts._template()


def test_target_lines_are_plotlys_vlines():
    """outputs_vs_targets draws its target lines as plotly's `add_vline` does."""
    services = pd.DataFrame([{"wave": "cumulative", "service_line": "rights", "activities": 3, "attendances": 3,
                              "people": 3, "target_activities": 12, "target_attendances": 240, "target_people": 18}])
    for expected in (0.5, None):
        spec = charts.outputs_vs_targets.spec(services, LABELS, "zh", expected_share=expected)
        layout = {k: v for k, v in spec["layout"].items() if k != "shapes"}
        if expected is not None:
            layout["annotations"] = layout["annotations"][:-1] or None
        fig = go.Figure({"data": spec["data"], "layout": {k: v for k, v in layout.items() if v is not None}})
        fig.add_vline(x=100, line=dict(color="#222222", width=1.5))
        if expected is not None:
            fig.add_vline(x=expected * 100, line=dict(color="#555555", width=1, dash="dash"),
                          annotation=dict(text=spec["layout"]["annotations"][-1]["text"],
                                          font=dict(size=11, color="#555555"), yanchor="bottom"),
                          annotation_position="top")
        assert fig.to_plotly_json()["layout"] == go.Figure(spec).to_plotly_json()["layout"]
