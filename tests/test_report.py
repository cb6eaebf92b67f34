"""The funders' report: both languages build from synthetic analysis tables, offline, escaped, suppressed,
deterministic; the tables and the Excel appendix carry the same suppression; the index lists quarters."""
from __future__ import annotations

import json
import re
import zipfile
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from pipelines.codebook import load_codebooks
from pipelines.config import load_config
from pipelines.indicators import outcomes_for
from pipelines.report import ReportContext, build_report, publish_quarter, quarter_entry, write_index
from pipelines.report.builder import plotly_js
from pipelines.report.tables import csv_bytes, csv_text, for_output
from pipelines.report.text import LANGS, load_strings

ROOT = Path(__file__).resolve().parents[1]
XSS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "\"><svg onload=alert(1)>",
       "=HYPERLINK(\"x\")"]
NETWORK = re.compile(r"(?i)(https?|wss?|ftp)://")


# ---------------------------------------------------------------- synthetic tables (CONTRACT columns)
@cache
def _config_and_books():
    return load_config(ROOT), load_codebooks(ROOT / "config" / "questionnaires")


def _est_row(wave, inst, indicator, stat, level, estimate, n, rng, group_var="", group="", share=None):
    share = stat == "proportion" if share is None else share
    se = (np.sqrt(max(estimate * (1 - estimate), 0.01) / n) if share else abs(estimate) * 0.05 + 0.02) * 1.2
    lo, hi = (max(0.0, estimate - 1.96 * se), min(1.0, estimate + 1.96 * se)) if share else \
        (estimate - 1.96 * se, estimate + 1.96 * se)
    return {"wave": wave, "instrument": inst, "indicator": indicator, "stat": stat, "level": level,
            "group_var": group_var, "group": group, "estimate": round(estimate, 6), "se": round(se, 6),
            "ci_low": round(lo, 6), "ci_high": round(hi, 6), "n": int(n), "deff": round(1.2 + rng.random() * 0.3, 4),
            "suppressed": False}


def synthetic_tables(quarter: str = "2025Q4", seed: int = 7) -> dict[str, pd.DataFrame]:
    config, books = _config_and_books()
    rng = np.random.default_rng(seed)
    wave_ids = [w.id for w in config.waves]
    waves = wave_ids[: wave_ids.index(quarter) + 1]
    base = waves[0]
    est, needs, outs = [], [], []
    for inst in ("parent", "child", "community"):
        book = books[inst]
        size = {"parent": 320, "child": 260, "community": 410}[inst]
        for t, wave in enumerate(waves):
            n = size - 20 * t
            lift = 0.08 * t
            for q in book.answer_questions:
                if q.type == "select_one" and q.choices and q.measure in ("ordinal", "binary"):
                    k = len(q.choices)
                    raw = rng.dirichlet(np.linspace(1, 2.5 + lift * 10, k)) if q.measure == "ordinal" else \
                        rng.dirichlet([2 + lift * 10, 2])
                    for c, p in zip(q.choices, raw):
                        est.append(_est_row(wave, inst, q.name, "proportion", str(c.code), float(p), n, rng))
                    if q.measure == "ordinal":
                        est.append(_est_row(wave, inst, q.name, "mean", "", float(np.dot(raw, q.codes)), n, rng))
                elif q.type == "select_multiple":
                    for c in q.choices:
                        p = float(rng.uniform(0.15, 0.7))
                        est.append(_est_row(wave, inst, q.option_column(c.code), "proportion", "1", p, n, rng))
                        if q.need and wave == base:
                            for j, comp in enumerate(config.compounds):
                                cn = 3 if comp.id == "yulu" else 25 + j
                                row = _est_row(wave, inst, q.option_column(c.code), "proportion", "1",
                                               min(0.95, p + rng.normal(0, 0.08)), cn, rng, "compound", comp.id)
                                if cn < 5:
                                    row.update(estimate=np.nan, se=np.nan, ci_low=np.nan, ci_high=np.nan,
                                               suppressed=True)
                                est.append(row)
            for o in outcomes_for(book, config):
                if o.level == "interval":
                    scale = next((s for s in book.scales.values() if s.score_column == o.column), None)
                    share = scale is not None and all(book[i].correct is not None for i in scale.items)
                    centre = 0.55 + lift if share else (50 + 30 * lift if scale and scale.multiplier > 1 else 3.1 + lift)
                    est.append(_est_row(wave, inst, o.column, "mean", "", min(centre, 0.97) if share else centre,
                                        n, rng, share=share))
            if inst == "child":
                est.append(_est_row(wave, inst, "who5_low", "proportion", "1", 0.32 - 0.03 * t, n, rng))
        needs_q = book["needs"] if "needs" in book else None
        if needs_q is not None:
            shares = sorted(rng.uniform(0.2, 0.75, len(needs_q.choices)), reverse=True)
            for rank, (c, p) in enumerate(zip(needs_q.choices, shares), start=1):
                needs.append({"wave": base, "instrument": inst, "group_var": "", "group": "", "rank": rank,
                              "indicator": needs_q.option_column(c.code), "option_label_zh": c.label_zh,
                              "option_label_en": c.label_en, "estimate": p, "ci_low": p - 0.05, "ci_high": p + 0.05,
                              "n": size, "suppressed": False})
        for o in outcomes_for(book, config):
            for scope in ("panel", "cross_section"):
                post = waves[-1]
                if post == base:
                    continue
                d = float(rng.normal(0.25, 0.2))
                p = float(min(1.0, abs(rng.normal(0.02, 0.05))))
                scale = next((s for s in book.scales.values() if s.score_column == o.column), None)
                if o.level == "binary" or (scale and all(book[i].correct is not None for i in scale.items)):
                    m0, change = 0.35, d * 0.2
                elif scale is not None and scale.multiplier > 1:
                    m0, change = 52.0, d * 12
                else:
                    m0, change = 3.1, d * 0.6
                outs.append({"instrument": inst, "indicator": o.column, "scope": scope, "group": "",
                             "pre_wave": base, "post_wave": post, "level": o.level, "n_pre": size,
                             "n_post": size - 100, "n_pairs": 140 if scope == "panel" else np.nan,
                             "mean_pre": m0, "mean_post": m0 + change, "diff": change,
                             "diff_ci_low": change * 0.5, "diff_ci_high": change * 1.5,
                             "test": "paired_t" if scope == "panel" else "welch_t", "statistic": 3.2, "df": 139,
                             "p_value": p / 2, "p_adjusted": p, "adjust_method": "holm",
                             "effect_size_name": "cohen_dz" if scope == "panel" else "cohen_d", "effect_size": d,
                             "es_ci_low": d - 0.17, "es_ci_high": d + 0.17, "suppressed": False,
                             "service_line": o.service_line, "label_zh": o.label_zh, "label_en": o.label_en})
    # a quarter-on-quarter comparison listed after the baseline one: the report must still use the baseline's
    if len(waves) > 2:
        outs.append({**outs[0], "pre_wave": waves[-2], "p_adjusted": np.nan, "effect_size": np.nan,
                     "mean_pre": 99.0})
    # the activity pre/post test, and a rights-line comparison too small to show
    outs.append({**outs[0], "instrument": "activity", "indicator": "workshop_score", "scope": "activity",
                 "group": "亲子沟通工作坊第1期", "pre_wave": waves[-1], "post_wave": waves[-1], "n_pre": 24,
                 "n_post": 22, "n_pairs": 21, "service_line": "family_education", "label_zh": "", "label_en": ""})
    outs.append({**outs[0], "instrument": "child", "indicator": "help_willing", "scope": "activity",
                 "group": "困境儿童探访", "n_pre": 4, "n_post": 4, "n_pairs": 4, "service_line": "rights",
                 "label_zh": "", "label_en": "", "pre_wave": waves[-1], "post_wave": waves[-1]})
    frame = pd.DataFrame(est)
    # one whole-population estimate suppressed by the analysis (n<5) — must show as suppressed everywhere
    sup = (frame["wave"] == quarter) & (frame["instrument"] == "child") & (frame["indicator"] == "voice_score")
    frame.loc[sup, ["estimate", "se", "ci_low", "ci_high", "deff"]] = np.nan
    frame.loc[sup, ["n", "suppressed"]] = [3, True]
    svc = []
    for t, wave in enumerate(waves[1:]):
        for line in config.service_lines:
            out = line.outputs
            svc.append({"wave": wave, "service_line": line.id, "activities": max(1, out["activities"] // 5),
                        "attendances": 3 if line.vulnerable and t == 0 else out["attendances"] // 5 + 7 * t,
                        "people": 3 if line.vulnerable and t == 0 else out["people"] // 4 + t})
    for line in config.service_lines:   # the year so far, as the analysis writes it (people counted once)
        mine = [r for r in svc if r["service_line"] == line.id]
        if mine:
            svc.append({"wave": "cumulative", "service_line": line.id,
                        "activities": sum(r["activities"] for r in mine),
                        "attendances": sum(r["attendances"] for r in mine),
                        "people": int(max(r["people"] for r in mine) * (1 + 0.25 * (len(mine) - 1)))})
    funnel, comp, weights, validation = [], [], [], []
    for wave in waves:
        for inst, size in (("parent", 320), ("child", 260), ("community", 410)):
            removed = {"duplicate": 6, "speeder": 11, "straightliner": 4, "out_of_age": 2 if inst == "child" else 0}
            read = size + sum(removed.values())
            funnel.append({"wave": wave, "instrument": inst, "step": 0, "rule": "read", "rows": read})
            for i, (rule, k) in enumerate(removed.items(), start=1):
                funnel.append({"wave": wave, "instrument": inst, "step": i, "rule": rule, "rows": k})
            funnel.append({"wave": wave, "instrument": inst, "step": len(removed) + 1, "rule": "kept", "rows": size})
            weights.append({"wave": wave, "instrument": inst, "n": size, "sum_weights": 2100.0,
                            "population_total": 2100.0, "deff_kish": 1.31, "n_effective": size / 1.31,
                            "weight_min": 2.1, "weight_max": 17.9, "iterations": 9, "converged": True})
            pops = config.populations[books[inst].population]
            for var, levels in pops.margins.items():
                total = sum(levels.values())
                for j, (level, count) in enumerate(levels.items()):
                    sn = 4 if (var == "compound" and level == "yulu" and inst == "child") else 20 + 7 * j
                    comp.append({"wave": wave, "instrument": inst, "variable": var, "level": level, "sample_n": sn,
                                 "sample_share": sn / size, "weighted_share": count / total * 0.98,
                                 "population_share": count / total})
            for j, col in enumerate(["compound", "child_age", "duration_s"]):
                validation.append({"wave": wave, "instrument": inst, "expectation": "expect_column_values_to_not_be_null",
                                   "column": col, "severity": "critical" if j == 0 else "warning",
                                   "success": j != 2, "unexpected_count": 0 if j != 2 else 3,
                                   "details": XSS[3] if j == 2 else ""})
    rel = [{"wave": wave, "instrument": inst, "scale": sid, "label_zh": sc.label_zh, "label_en": sc.label_en,
            "alpha": 0.78, "ci_low": 0.72, "ci_high": 0.83, "n": 3 if sid == "voice" else 180, "k": len(sc.items)}
           for wave in waves for inst in ("parent", "child", "community") for sid, sc in books[inst].scales.items()]
    free = [{"wave": quarter, "instrument": "parent", "text": XSS[0]},
            {"wave": quarter, "instrument": "community", "text": XSS[1]},
            {"wave": quarter, "instrument": "child", "text": "希望广场多一些适合小朋友的活动！\n周末也开放就好了。"},
            {"wave": base, "instrument": "parent", "text": XSS[2]}]
    return {"estimates": frame, "outcomes": pd.DataFrame(outs), "funnel": pd.DataFrame(funnel),
            "composition": pd.DataFrame(comp), "weights": pd.DataFrame(weights), "services": pd.DataFrame(svc),
            "validation": pd.DataFrame(validation), "needs_priority": pd.DataFrame(needs),
            "reliability": pd.DataFrame(rel),
            "free_text": pd.DataFrame(free)}


def synthetic_context(quarter: str = "2025Q4", **overrides) -> ReportContext:
    config, books = _config_and_books()
    wave_ids = [w.id for w in config.waves]
    tables = synthetic_tables(quarter)
    tables.update(overrides)
    return ReportContext(config=config, books=books, quarter=quarter, waves=wave_ids[: wave_ids.index(quarter) + 1],
                         versions={k: b.version for k, b in books.items()}, **tables)


@pytest.fixture(scope="module")
def context() -> ReportContext:
    return synthetic_context()


@pytest.fixture(scope="module")
def published(tmp_path_factory, context) -> Path:
    out = tmp_path_factory.mktemp("reports") / "2025Q4"
    publish_quarter(out, context)
    return out


@pytest.fixture(scope="module")
def reports(published) -> dict[str, str]:
    return {lang: (published / name).read_text(encoding="utf-8")
            for lang, name in (("zh", "report.html"), ("en", "report.en.html"))}


def _figures(html: str) -> dict[str, dict]:
    return {m.group(1): json.loads(m.group(2)) for m in
            re.finditer(r'<script type="application/json" id="(chart-\d+)-data">(.*?)</script>', html, re.S)}


def _strip_json_and_js(html: str) -> str:
    """The HTML with the plotly.js bundle and the figure JSON blocks removed."""
    html = html.replace(plotly_js(), "")
    return re.sub(r'<script type="application/json"[^>]*>.*?</script>', "", html, flags=re.S)


# ---------------------------------------------------------------- tests
def test_strings_have_both_languages():
    for section, entries in load_strings().items():
        for key, entry in entries.items():
            assert set(entry) == {"zh", "en"}, f"{section}.{key}"
            assert set(re.findall(r"{(\w+)}", entry["zh"])) == set(re.findall(r"{(\w+)}", entry["en"])), \
                f"{section}.{key}: placeholders differ"


def test_both_languages_build_with_charts(reports):
    for lang, html in reports.items():
        figures = _figures(html)
        assert len(figures) >= 8, lang
        divs = re.findall(r'<div class="plot" id="(chart-\d+)"', html)
        assert divs == sorted(divs) and set(divs) == set(figures)
        assert all(fig["data"] for fig in figures.values()), "every chart has traces"
    assert '<html lang="zh-CN">' in reports["zh"] and '<html lang="en">' in reports["en"]
    assert "摘要" in reports["zh"] and "Summary" in reports["en"]
    assert "家长卷" in reports["zh"] and "Parents" in reports["en"]


def test_every_chart_json_passes_plotly_validation(reports):
    """The charts are built with plotly's validation off (for speed): plotly must still accept every
    figure the report embeds, property by property."""
    for lang, html in reports.items():
        for chart_id, fig in _figures(html).items():
            try:
                go.Figure(fig)
            except ValueError as exc:  # plotly names the invalid property
                pytest.fail(f"{lang} {chart_id}: {exc}")


def test_every_chart_has_a_takeaway_and_a_table(reports):
    html = reports["zh"]
    figures = re.findall(r'<figure class="chart".*?</figure>', html, re.S)
    assert len(figures) == len(_figures(html))
    for fig in figures:
        assert 'class="takeaway"' in fig and "<details><summary>" in fig and "<table>" in fig


def test_plotly_js_embedded_once_and_nothing_from_the_network(reports):
    for html in reports.values():
        assert html.count("plotly.js v") == 1 and html.count(plotly_js()) == 1
        assert not NETWORK.search(html), NETWORK.search(html)
        assert not re.search(r"<(script|img|iframe|link|source|video|audio)\b[^>]*\b(src|href)\s*=", html, re.I)
        assert not re.search(r"url\(\s*['\"]?(?!data:)", _strip_json_and_js(html))
        assert "@import" not in _strip_json_and_js(html)
        assert "default-src 'none'" in html


def test_free_text_is_escaped_in_html_and_chart_json(reports):
    for html in reports.values():
        assert "<script>alert(1)</script>" not in html
        assert "<img src=x" not in html and "<svg onload" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
        for cid, fig in _figures(html).items():
            text = json.dumps(fig, ensure_ascii=False)
            assert "<script" not in text and "onerror=" not in text.replace("onerror=alert(1)&gt;", ""), cid
        # the only <script> tags are the two of the page and one JSON block per chart
        assert len(re.findall(r"<script\b", html)) == 2 + len(_figures(html))


def test_respondent_text_in_chart_labels_is_escaped():
    hostile = "<b onmouseover=alert(1)>中福城</b>"
    ctx = synthetic_context()
    est = ctx.estimates.copy()
    est.loc[est["group_var"] == "compound", "group"] = hostile
    html = build_report(synthetic_context(estimates=est), "zh")
    assert "<b onmouseover" not in html
    heat = [f for f in _figures(html).values() if f["data"][0]["type"] == "heatmap"]
    assert heat and "&lt;b onmouseover=alert(1)&gt;" in json.dumps(heat[0], ensure_ascii=False)


def test_suppressed_estimate_shown_as_suppressed(reports, published):
    assert "样本不足（n&lt;5）" in reports["zh"] and "suppressed (n&lt;5)" in reports["en"]
    est = pd.read_csv(published / "tables" / "estimates.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    row = est[(est["wave"] == "2025Q4") & (est["instrument"] == "child") & (est["indicator"] == "voice_score")]
    assert len(row) == 1 and row["suppressed"].iloc[0] == "True" and row["estimate"].iloc[0] == ""
    # a compound cell with n=3 at baseline, flagged by nobody upstream except n: suppressed here too
    small = est[(est["group"] == "yulu") & (est["n"] == "3")]
    assert len(small) and (small["suppressed"] == "True").all() and (small["estimate"] == "").all()
    wb = pd.read_excel(published / "tables" / "appendix.xlsx", sheet_name="estimates", dtype=str)
    xrow = wb[(wb["wave"] == "2025Q4") & (wb["instrument"] == "child") & (wb["indicator"] == "voice_score")]
    assert xrow["estimate"].iloc[0].startswith("样本不足") and "suppressed" in xrow["estimate"].iloc[0]


def test_vulnerable_small_counts_never_shown(reports, published):
    svc = pd.read_csv(published / "tables" / "services.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    rights = svc[(svc["service_line"] == "rights") & (svc["wave"] == "2024Q4")]
    assert rights["people"].iloc[0] == "" and rights["attendances"].iloc[0] == "" and rights["suppressed"].iloc[0] == "True"
    assert not (svc[["attendances", "people"]].isin(["1", "2", "3", "4"])).any().any()
    # 16 of the 18 children in difficulty would say 2 were not reached: withheld too
    ctx = synthetic_context()
    services = ctx.services.copy()
    services.loc[(services["wave"] == "cumulative") & (services["service_line"] == "rights"), "people"] = 16
    html = build_report(synthetic_context(services=services), "en")
    assert "16 people (target 18)" not in html and "suppressed (n&lt;5) people (target 18)" in html
    rel = pd.read_csv(published / "tables" / "reliability.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert (rel.loc[rel["n"] == "3", "alpha"] == "").all() and (rel.loc[rel["n"] == "3", "suppressed"] == "True").all()
    comp = pd.read_csv(published / "tables" / "composition.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    small = comp[comp["sample_n"] == "4"]
    assert (small["sample_share"] == "").all() and (small["suppressed"] == "True").all()
    for html in reports.values():
        # the 1 orphan / 6 children on 低保 are never broken down: only the total (18) appears
        assert "孤儿 1" not in html and "1 orphan" not in html


def test_published_files_and_csv_encoding(published):
    names = sorted(p.relative_to(published).as_posix() for p in published.rglob("*") if p.is_file())
    assert "report.html" in names and "report.en.html" in names and "tables/appendix.xlsx" in names
    for table in ("estimates", "outcomes", "funnel", "composition", "weights", "services", "validation",
                  "needs_priority", "reliability"):
        raw = (published / "tables" / f"{table}.csv").read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf"), table
    est = pd.read_csv(published / "tables" / "estimates.csv", encoding="utf-8-sig")
    assert list(est.columns[:14]) == ["wave", "instrument", "indicator", "stat", "level", "group_var", "group",
                                      "estimate", "se", "ci_low", "ci_high", "n", "deff", "suppressed"]
    val = (published / "tables" / "validation.csv").read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK" in val and "\n=HYPERLINK" not in val and ",=HYPERLINK" not in val
    sheets = pd.ExcelFile(published / "tables" / "appendix.xlsx").sheet_names
    assert sheets[0].startswith("说明") and {"estimates", "outcomes", "services", "needs_priority"} <= set(sheets)
    with zipfile.ZipFile(published / "tables" / "appendix.xlsx") as z:
        for name in z.namelist():
            assert not NETWORK.search(z.read(name).decode("utf-8", "replace").replace(
                "http://schemas.", "").replace("http://purl.org", "").replace("http://www.w3.org", "")), name


def test_identical_bytes_on_rebuild(tmp_path, published):
    again = tmp_path / "2025Q4"
    publish_quarter(again, synthetic_context())     # a fresh context built from the same inputs
    files = sorted(p.relative_to(published) for p in published.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (published / rel).read_bytes() == (again / rel).read_bytes(), rel
    assert build_report(synthetic_context(), "en").encode("utf-8") == (published / "report.en.html").read_bytes()


def test_the_part_made_elsewhere_gets_no_raw_estimates_and_makes_the_same_bytes(tmp_path, published):
    """A run hands `other_part`s to its helper (pickled, as this share does) without the context's raw
    estimates (the prepared table carries them): the files are the same as made in one process."""
    import pickle

    handed = []

    def share(jobs, here, there, *shared, first):  # as Helper.share when the helper takes every part
        handed.append(shared[0])
        shared = pickle.loads(pickle.dumps(shared))
        first()
        return [there(job, *shared) for job in jobs]

    elsewhere = tmp_path / "2025Q4"
    publish_quarter(elsewhere, synthetic_context(), share)
    assert handed and handed[0].estimates.empty and not synthetic_context().estimates.empty
    for rel in sorted(p.relative_to(published) for p in published.rglob("*") if p.is_file()):
        assert (published / rel).read_bytes() == (elsewhere / rel).read_bytes(), rel


def test_effects_are_against_the_baseline(context):
    from pipelines.report.document import Doc
    from pipelines.report.context import prepare
    doc = Doc(context, prepare(context), "zh")
    latest = doc.latest_outcomes()
    first = latest[(latest["instrument"] == "parent") & (latest["indicator"] == context.outcomes["indicator"].iloc[0])
                   & (latest["scope"] == "panel")]
    assert list(first["pre_wave"]) == ["2024-needs"] and first["mean_pre"].iloc[0] != 99.0


def test_cumulative_people_are_never_summed_over_quarters():
    """Without the analysis's cumulative rows, unique people cannot be added up across quarters."""
    ctx = synthetic_context()
    quarterly = ctx.services[ctx.services["wave"] != "cumulative"]
    html = build_report(synthetic_context(services=quarterly), "en")
    assert "People served so far" not in html and "Activities held so far" in html


def test_empty_tables_still_build():
    config, books = _config_and_books()
    ctx = ReportContext(config=config, books=books, quarter="2024Q4", waves=["2024-needs", "2024Q4"])
    for lang in LANGS:
        html = build_report(ctx, lang)
        assert ("暂无数据" if lang == "zh" else "No data yet") in html
        assert not NETWORK.search(html)


def test_index_lists_every_quarter(tmp_path):
    reports = tmp_path / "reports"
    (reports / "2025Q1").mkdir(parents=True)
    (reports / "2025Q1" / "report.html").write_text("x", encoding="utf-8")
    path = write_index(reports, [quarter_entry(synthetic_context("2025Q2"))])
    html = path.read_text(encoding="utf-8")
    assert "2025Q1/report.html" in html and "2025Q2/report.html" in html and "2025Q2/report.en.html" in html
    assert html.index("2025Q2") < html.index("2025Q1/report.html")
    assert "2025年第二季度" in html and not NETWORK.search(html)
    assert write_index(reports, [quarter_entry(synthetic_context("2025Q2"))]).read_bytes() == path.read_bytes()


def test_csv_text_is_pandas_to_csv():
    """The tables' CSV writer gives pandas' `to_csv` text byte for byte, awkward cells included."""
    text = ["plain", "a,b", 'say "hi"', "two\nlines", "cr\rhere", "", None, "=1+1", "’中文，标点", " padded "]
    n = len(text)
    frame = pd.DataFrame({
        "text": text,
        "float": [0.1, 1e-05, 1e16, -0.0, np.inf, -np.inf, np.nan, 0.30000000000000004, 0.0, 2.5e-300],
        "count": pd.array([1, None, 3, 0, -7, 10**12, None, 5, 6, 7], dtype="Int64"),
        "flag": [True, False] * (n // 2),
        "int": np.arange(n, dtype=np.int64) - 3,
        "a,quoted \"name\"": ["x"] * n,
        "a name\non two lines": ["y"] * n,
    })
    for part in (frame, frame.iloc[:0], frame[["text", "float"]], frame.assign(mixed=[1, "a"] * (n // 2))):
        assert csv_text(part) == part.to_csv(index=False, lineterminator="\n")
        # a published CSV: counts as integers, formula-like text defused (as the cells are quoted)
        part = part.assign(n=np.linspace(0, 9.2, len(part)))
        published = for_output("t", part).to_csv(index=False, lineterminator="\n")
        assert csv_bytes("t", part) == b"\xef\xbb\xbf" + published.encode("utf-8")
        assert "'=1+1" in published or part.empty
        # made in pieces of rows (as a run makes estimates.csv in both its processes), the same bytes
        for pieces in (2, 3, 11):
            assert b"".join(csv_bytes("t", part, (i, pieces)) for i in range(pieces)) == csv_bytes("t", part)
    rng = np.random.default_rng(7)   # floats of every magnitude, and round ones, as pandas prints them
    floats = rng.random(4000) * 10.0 ** rng.integers(-30, 30, 4000)
    floats = np.concatenate([floats, -floats, np.round(floats, 3), [1e15, 9999999999999998.0, 1e-4, 5e-324]])
    many = pd.DataFrame({"x": floats, "y": "a"})
    assert csv_text(many) == many.to_csv(index=False, lineterminator="\n")


def test_network_free_is_the_scheme_regex():
    """plotly.js is made network-free by a scan of its `://` only: the same text as the regex it replaces."""
    from plotly.offline import get_plotlyjs

    from pipelines.report.builder import network_free

    def by_regex(js: str) -> str:
        return re.sub(r"(?i)\b(https?|wss?|ftp)://", lambda m: m.group(1) + ":\\/\\/", js)

    samples = [get_plotlyjs(), "a http://x 'HTTPS://y' (wss://z) ftp://w ws://v file://u ://t", "://", "", "x://",
               "s3://bucket " + "a" * 40 + "://", "héllo_wss2://", "@Https://a.b/c?d=e://f"]
    for js in samples:
        assert network_free(js) == by_regex(js)
    for unsafe in ("xhttp://a", "a_ftp://b", "1https://c", "héllo_http://", "a" * 40 + "http://"):
        with pytest.raises(RuntimeError):
            network_free(unsafe)


def test_appendix_sheet_cells_are_xlsxwriters():
    """The appendix's worksheets write plain cells' XML themselves, row by row: the same bytes as
    xlsxwriter's own, with cell, row and column formats, row spans, a row without cells, and the cells they
    leave to xlsxwriter (formulas, blanks)."""
    import datetime as dt
    import io

    import xlsxwriter

    from pipelines.report.tables import _Sheet

    def book(sheet_class) -> bytes:
        buffer = io.BytesIO()
        wb = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_formulas": False})
        wb.set_properties({"created": dt.datetime(2025, 1, 1)})
        bold, grey = wb.add_format({"bold": True}), wb.add_format({"italic": True})
        ws = wb.add_worksheet("t", sheet_class)
        ws.set_column(1, 1, 12, grey)
        ws.set_row(3, 20, bold)
        ws.set_column(2, 3, 14)
        for r, value in enumerate([1, -2.5, 1e-300, 123456789.123456789, 0.1 + 0.2, 10**17, "a&b<c>\"d\"",
                                   " padded ", "中文", True, False]):
            for c in range(4):
                ws.write(r, c, value, bold if (r + c) % 3 == 0 else None)
        ws.write_formula(12, 0, "=1+1")
        ws.write_blank(12, 1, None, bold)
        ws.set_row(14, 30)   # a row with a height and no cell
        for r in range(40, 75, 3):   # rows in several blocks of 16, with different spans
            ws.write(r, r % 7, r)
        wb.close()
        return buffer.getvalue()

    assert book(_Sheet) == book(None)
