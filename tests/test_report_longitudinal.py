"""The longitudinal tables in the report: attrition, reliable change and trend models shown in both
languages; a model that did not converge is said to have failed and none of its numbers appear; small
cells stay withheld; the CSVs are written with a BOM and deterministically; the demo's report shows them."""
from __future__ import annotations

import html as htmllib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.report import ReportContext, build_report
from pipelines.report.longitudinal import COLUMNS, LongitudinalContext, prepare, write_tables
from pipelines.report.text import LANGS, Strings

BOGUS = ["987.654", "987.65", "55.555", "55.56"]   # numbers of a failed or withheld model: never shown


def _trend_rows() -> list[dict]:
    rows = []
    base = {"model": "mixed_lm_reml", "link": "identity", "estimate_name": "mean_difference",
            "baseline_wave": "2024-needs", "n_baseline": 454, "n_obs": 1881, "n_respondents": 901, "n_linked": 498,
            "service_line": "family_education", "label_zh": "亲子沟通", "label_en": "Parent–child communication"}
    for i, w in enumerate(["2024Q4", "2025Q1", "2025Q2", "2025Q3", "2025Q4"], start=1):
        est = 0.05 * i
        rows.append(base | {"instrument": "parent", "indicator": "pcc_score", "wave": w, "estimate": est, "se": 0.025,
                            "ci_low": est - 0.049, "ci_high": est + 0.049, "p_value": 0.0004 / i, "n_wave": 280,
                            "converged": True, "note": "", "suppressed": False})
    # did not converge, yet (wrongly) carries a number: the report must neither show nor publish it
    rows.append(base | {"instrument": "child", "indicator": "who5_score", "wave": "", "estimate": 987.654,
                        "converged": False, "note": "random-intercept variance estimated at 0", "suppressed": False,
                        "label_zh": "WHO-5 幸福感指数", "label_en": "WHO-5 Well-Being Index"})
    # a wave with 3 answers: withheld whatever the analysis wrote
    rows.append(base | {"instrument": "child", "indicator": "safe_play_score", "wave": "2025Q4", "estimate": 55.555,
                        "se": 1.0, "ci_low": 54.0, "ci_high": 57.0, "p_value": 0.5, "n_wave": 3, "converged": True,
                        "note": "", "suppressed": False, "label_zh": "儿童安全游玩评价", "label_en": "Safe places to play"})
    rows.append({"instrument": "parent", "indicator": "use_plaza", "model": "ordinal_logit", "link": "logit",
                 "estimate_name": "log_odds_ratio", "baseline_wave": "2024-needs", "wave": "2025Q4", "estimate": 0.4321,
                 "se": 0.14, "ci_low": 0.1577, "ci_high": 0.7065, "p_value": 0.002, "n_wave": 278, "n_baseline": 454,
                 "n_obs": 1881, "n_respondents": 901, "n_linked": 498, "converged": True, "note": "",
                 "suppressed": False, "service_line": "growth_space", "label_zh": "", "label_en": ""})
    return rows


def _rc_rows() -> list[dict]:
    return [{"instrument": "parent", "indicator": "pcc_score", "pre_wave": "2024-needs", "post_wave": "2025Q4",
             "n": 176, "sd_baseline": 0.94, "se_diff": 0.3229, "reliability": 0.94, "improved": 0.1932,
             "unchanged": 0.7670, "worse": 0.0398, "note": "", "suppressed": False, "service_line": "family_education",
             "label_zh": "亲子沟通", "label_en": "Parent–child communication"},
            {"instrument": "child", "indicator": "who5_score", "pre_wave": "2024-needs", "post_wave": "2025Q4",
             "n": 3, "sd_baseline": 22.5, "se_diff": 10.5, "reliability": 0.89, "improved": 0.777, "unchanged": 0.2,
             "worse": 0.023, "note": "", "suppressed": False, "service_line": "mental_health",
             "label_zh": "WHO-5 幸福感指数", "label_en": "WHO-5 Well-Being Index"}]


def _attrition_rows() -> list[dict]:
    common = {"instrument": "parent", "pre_wave": "2024-needs", "post_wave": "2025Q4", "n_unkeyed": 7, "note": "",
              "suppressed": False}
    return [common | {"characteristic": "respondents", "level": "", "stat": "share", "n_followed": 176, "n_lost": 278,
                      "value_followed": 0.3877, "value_lost": 0.6123},
            common | {"characteristic": "hukou_group", "level": "", "stat": "", "n_followed": 176, "n_lost": 278,
                      "test": "chisq", "statistic": 5.75, "df": 1, "p_value": 0.0123, "effect_size_name": "cramers_v",
                      "effect_size": 0.119},
            common | {"characteristic": "hukou_group", "level": "registered", "stat": "share", "n_followed": 162,
                      "n_lost": 233, "value_followed": 0.9205, "value_lost": 0.8381},
            common | {"characteristic": "hukou_group", "level": "floating", "stat": "share", "n_followed": 14,
                      "n_lost": 45, "value_followed": 0.0795, "value_lost": 0.1619},
            common | {"characteristic": "compound", "level": "", "stat": "", "n_followed": 176, "n_lost": 278,
                      "test": "chisq", "statistic": 12.0, "df": 7, "p_value": 0.0995, "effect_size_name": "cramers_v",
                      "effect_size": 0.163},
            common | {"characteristic": "compound", "level": "jinshang", "stat": "share", "n_followed": 53,
                      "n_lost": 66, "value_followed": 0.3011, "value_lost": 0.2374},
            # 3 followed in yulu: a small cell the analysis failed to withhold (its share, were it shown, would
            # be the largest difference and the one the report picks)
            common | {"characteristic": "compound", "level": "yulu", "stat": "share", "n_followed": 3, "n_lost": 17,
                      "value_followed": 0.4444, "value_lost": 0.0612},
            common | {"characteristic": "pcc_score", "level": "", "stat": "mean", "n_followed": 176, "n_lost": 278,
                      "value_followed": 3.366, "value_lost": 3.120, "test": "welch_t", "statistic": 2.75, "df": 367.5,
                      "p_value": 0.0063, "effect_size_name": "hedges_g", "effect_size": 0.265}]


def _context(**overrides) -> LongitudinalContext:
    from test_report import synthetic_context

    base = synthetic_context()
    fields = {k: getattr(base, k) for k in base.__dataclass_fields__}
    tables = {"trends": pd.DataFrame(_trend_rows()), "reliable_change": pd.DataFrame(_rc_rows()),
              "attrition": pd.DataFrame(_attrition_rows())}
    return LongitudinalContext(**fields | tables | overrides)


@pytest.fixture(scope="module")
def reports() -> dict[str, str]:
    ctx = _context()
    return {lang: build_report(ctx, lang) for lang in LANGS}


def _text(html: str) -> str:
    html = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    return htmllib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def test_both_languages_show_the_three_tables(reports):
    for lang, html in reports.items():
        T, text = Strings(lang), _text(reports[lang])
        for key in ("reliable_change.heading", "trends.heading", "trends.col_line_model", "attrition.col_followed"):
            assert T(key) in text, (lang, key)
        assert T("trends.convergence", converged=3, total=4) in text     # all but who5
        assert T("trends.not_converged") in text
        assert "19.3%" in text and "76.7%" in text and "4.0%" in text     # the reliable change shares
        assert "+0.43 (0.16 – 0.71)" in text                               # the ordinal model, logit link
        assert T("trends.ordinal") in text and "logit" in T("trends.ordinal")
        assert "tables/attrition.csv" in html and "tables/trends.csv" in html and "tables/reliable_change.csv" in html


def _between(text: str, start: str, end: str) -> str:
    i = text.index(start)
    return text[i:text.index(end, i)]


def test_nothing_of_a_failed_or_withheld_model_is_shown(reports):
    notes = {"zh": "以下模型未收敛，报告不显示其系数：WHO-5 幸福感指数（儿童卷）。",
             "en": "These models did not converge, so their coefficients are not shown: WHO-5 Well-Being Index "
                   "(Children)."}
    for lang, html in reports.items():
        T, text = Strings(lang), _text(html)
        for bogus in BOGUS:
            assert bogus not in text, (lang, bogus)
        assert notes[lang] in text
        # reliable change of 3 pairs: withheld (its 77.7% improved is never shown)
        rc = _between(text, T("reliable_change.caption", wave="2025Q4"), T("trends.heading"))
        assert "77.7%" not in rc and T("chart.suppressed", min_cell=5) in rc
        # the attrition row of 3 followed in one compound is blanked, the test rows are there
        att = _between(text, T("attrition.caption", wave="2025Q4"), T("attrition.note"))
        assert "44.4%" not in att and "30.1%" in att and "23.7%" in att
        assert "0.006" in att and "0.012" in att and "0.100" in att


def test_published_tables_withhold_the_same(tmp_path):
    paths = write_tables(tmp_path, _context())
    assert sorted(p.name for p in paths) == ["attrition.csv", "reliable_change.csv", "trends.csv"]
    for p in paths:
        assert p.read_bytes().startswith(b"\xef\xbb\xbf")
        table = pd.read_csv(p, encoding="utf-8-sig", keep_default_na=False, na_values=[""])
        assert list(table.columns) == COLUMNS[p.stem]
        for bogus in ("987.654", "55.555", "0.777", "0.4444"):
            assert bogus not in p.read_text(encoding="utf-8-sig"), (p.name, bogus)
    trends = pd.read_csv(tmp_path / "trends.csv", encoding="utf-8-sig", keep_default_na=False, na_values=[""])
    failed = trends[~trends["converged"]]
    assert len(failed) == 1 and failed[["estimate", "se", "ci_low", "ci_high", "p_value"]].isna().all(axis=None)
    att = pd.read_csv(tmp_path / "attrition.csv", encoding="utf-8-sig", keep_default_na=False, na_values=[""])
    yulu = att[att["level"] == "yulu"].iloc[0]
    assert np.isnan(yulu["n_followed"]) and yulu["n_lost"] == 17 and yulu["suppressed"]
    again = tmp_path / "again"
    write_tables(again, _context())
    for p in paths:
        assert (again / p.name).read_bytes() == p.read_bytes()


def test_prepare_limits_to_the_reports_waves():
    ctx = _context(quarter="2025Q1", waves=["2024-needs", "2024Q4", "2025Q1"])
    prepared = prepare(ctx)
    assert set(prepared["trends"]["wave"]) <= {"2024Q4", "2025Q1", ""}
    assert prepared["reliable_change"].empty and prepared["attrition"].empty


def test_a_plain_context_has_no_longitudinal_blocks():
    from test_report import synthetic_context

    html = build_report(synthetic_context(), "en")
    assert "Reliable change for individuals" not in html and "tables/trends.csv" not in html
    assert isinstance(synthetic_context(), ReportContext)


# ---------------------------------------------------------------- the demo
@pytest.mark.slow
def test_demo_report_shows_the_longitudinal_tables(run_root):
    quarter = sorted(p.name for p in (run_root / "reports").glob("20*Q*"))[-1]
    folder = run_root / "reports" / quarter
    for lang, name in (("zh", "report.html"), ("en", "report.en.html")):
        text, T = _text((folder / name).read_text(encoding="utf-8")), Strings(lang)
        for key in ("reliable_change.heading", "trends.heading", "trends.col_line_model", "attrition.col_lost"):
            assert T(key) in text, (lang, key)
    trends = pd.read_csv(folder / "tables" / "trends.csv", encoding="utf-8-sig", keep_default_na=False,
                         na_values=[""])
    models = trends.drop_duplicates(["instrument", "indicator"])
    en = _text((folder / "report.en.html").read_text(encoding="utf-8"))
    assert Strings("en")("trends.convergence", converged=int(models["converged"].sum()), total=len(models)) in en
    assert {p.name for p in (folder / "tables").glob("*.csv")} >= {"attrition.csv", "reliable_change.csv",
                                                                   "trends.csv"}
    # the funder's workbook carries them too, each sheet equal to its CSV
    book = pd.ExcelFile(folder / "tables" / "appendix.xlsx")
    assert {"attrition", "reliable_change", "trends"} <= set(book.sheet_names)
    sheet = pd.read_excel(book, sheet_name="trends")
    assert len(sheet) == len(trends) and list(sheet.columns) == list(trends.columns)
    assert sheet["converged"].astype(bool).tolist() == trends["converged"].astype(bool).tolist()


def test_empty_longitudinal_tables_still_build():
    from test_report import _config_and_books

    config, books = _config_and_books()
    ctx = LongitudinalContext(config=config, books=books, quarter="2024Q4", waves=["2024-needs", "2024Q4"])
    for lang in LANGS:
        text = _text(build_report(ctx, lang))
        T = Strings(lang)
        assert T("reliable_change.heading") in text and T("trends.heading") in text
        assert T("meta.no_data") in text
