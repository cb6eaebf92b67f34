"""Panel attrition (tables/attrition.csv): who is followed or lost, their counts, the tests (against R),
suppression of small cells, and the demo's table against counts taken straight from the clean data.
Also: a panel comparison in outcomes.csv whose keys link nobody says n_pairs = 0, not empty."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.attrition import COLUMNS, attrition_table
from pipelines.outcomes import outcome_table

# ---------------------------------------------------------------- a hand-made panel (parent instrument)
# followed f01..f10 (answer again in 2024Q4), lost l01..l14, three respondents without a key, and f01
# twice at baseline (its second response must not count).
FOLLOWED_COMPOUND = ["jinshang"] * 5 + ["zhongfucheng"] * 3 + ["fengzeyuan"] * 2
LOST_COMPOUND = ["jinshang"] * 2 + ["zhongfucheng"] * 5 + ["fengzeyuan"] * 7
FOLLOWED_HUKOU = ["registered"] * 8 + ["floating"] * 2
LOST_HUKOU = ["registered"] * 6 + ["floating"] * 8
FOLLOWED_PCC = [3.2, 4.1, 3.8, 2.9, 4.5, 3.6, 4.0, 3.3, 4.4, 3.9]
LOST_PCC = [2.8, 3.1, 3.5, 2.2, 3.9, 2.6, 3.0, 3.4, 2.9, 3.7, 2.5, 3.2, 4.1, 2.7]


def _baseline() -> pd.DataFrame:
    keys = [f"f{i:02d}" for i in range(1, 11)] + [f"l{i:02d}" for i in range(1, 15)]
    frame = pd.DataFrame({"respondent_key": keys, "compound": FOLLOWED_COMPOUND + LOST_COMPOUND,
                          "hukou_group": FOLLOWED_HUKOU + LOST_HUKOU, "pcc_score": FOLLOWED_PCC + LOST_PCC})
    unkeyed = pd.DataFrame({"respondent_key": ["", None, ""], "compound": ["jinshang"] * 3,
                            "hukou_group": ["floating"] * 3, "pcc_score": [1.0, 1.0, 1.0]})
    repeat = pd.DataFrame({"respondent_key": ["f01"], "compound": ["yulu"], "hukou_group": ["floating"],
                           "pcc_score": [1.0]})
    return pd.concat([frame, unkeyed, repeat], ignore_index=True).assign(wave="2024-needs")


def _later(keys: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"respondent_key": keys, "compound": "jinshang", "hukou_group": "registered",
                         "pcc_score": 4.0, "wave": "2024Q4"})


@pytest.fixture(scope="module")
def tiny(config, books) -> pd.DataFrame:
    later = _later([f"f{i:02d}" for i in range(1, 11)] + ["n01", "n02", ""])
    return attrition_table({"parent": {"2024-needs": _baseline(), "2024Q4": later}}, books, config)


def _row(table: pd.DataFrame, characteristic: str, level: str = "") -> dict:
    rows = table[(table["characteristic"] == characteristic) & (table["level"] == level)]
    assert len(rows) == 1, (characteristic, level)
    return rows.iloc[0].to_dict()


def test_followed_lost_and_unkeyed_counts(tiny):
    assert list(tiny.columns) == COLUMNS
    head = _row(tiny, "respondents")
    # 10 followed, 14 lost; the 3 without a key are in neither group; f01's second response is not a person
    assert (head["n_followed"], head["n_lost"], head["n_unkeyed"]) == (10, 14, 3)
    assert head["value_followed"] == pytest.approx(10 / 24) and head["value_lost"] == pytest.approx(14 / 24)
    assert set(tiny["pre_wave"]) == {"2024-needs"} and set(tiny["post_wave"]) == {"2024Q4"}
    assert (tiny["n_unkeyed"] == 3).all()


def test_fisher_for_a_sparse_two_by_two_equals_r(tiny):
    # R 4.2.2: fisher.test(matrix(c(8, 2, 6, 8), nrow = 2, byrow = TRUE))   # followed / lost × registered / floating
    #   Fisher's Exact Test for Count Data — p-value = 0.1040517
    # (expected count of followed-floating is 10·10/24 = 4.2 < 5, so Fisher, not chi-square)
    row = _row(tiny, "hukou_group")
    assert row["test"] == "fisher_exact"
    assert row["p_value"] == pytest.approx(0.1040517, abs=5e-8)
    assert (row["n_followed"], row["n_lost"]) == (10, 14)


def test_chisq_for_compounds_equals_r(tiny):
    # R 4.2.2: chisq.test(matrix(c(5, 3, 2, 2, 5, 7), nrow = 2, byrow = TRUE))
    #   Pearson's Chi-squared test — X-squared = 4.0081633, df = 2, p-value = 0.134784
    #   (R warns "Chi-squared approximation may be incorrect": expected counts 10·(7, 8, 9)/24 = 2.9, 3.3, 3.8
    #   and 14·(7, 8, 9)/24 = 4.1, 4.7, 5.25 — five of six under 5)
    row = _row(tiny, "compound")
    assert row["test"] == "chisq"
    assert row["statistic"] == pytest.approx(4.0081633, abs=5e-8)
    assert row["df"] == 2
    assert row["p_value"] == pytest.approx(0.134784, abs=5e-7)
    assert row["note"].startswith("5 of 6 expected counts under 5")


def test_welch_for_a_baseline_scale_equals_r(tiny):
    # R 4.2.2: t.test(c(3.2, 4.1, 3.8, 2.9, 4.5, 3.6, 4.0, 3.3, 4.4, 3.9),
    #               c(2.8, 3.1, 3.5, 2.2, 3.9, 2.6, 3.0, 3.4, 2.9, 3.7, 2.5, 3.2, 4.1, 2.7))
    #   Welch Two Sample t-test — t = 2.9629816, df = 20.246119, p-value = 0.007621319;
    #   mean of x 3.770000000, mean of y 3.114285714
    row = _row(tiny, "pcc_score")
    assert row["test"] == "welch_t" and row["stat"] == "mean"
    assert row["statistic"] == pytest.approx(2.9629816, abs=5e-7)
    assert row["df"] == pytest.approx(20.246119, abs=5e-6)
    assert row["p_value"] == pytest.approx(0.007621319, abs=5e-10)
    assert row["value_followed"] == pytest.approx(3.77) and row["value_lost"] == pytest.approx(3.114285714)


def test_small_cells_are_withheld_with_a_complement(tiny):
    """Counts of 1–4 are blanked; a group with one such cell loses its next smallest cell too."""
    jin, zhong, feng = (_row(tiny, "compound", c) for c in ("jinshang", "zhongfucheng", "fengzeyuan"))
    assert jin["n_followed"] == 5 and jin["value_followed"] == pytest.approx(0.5)
    assert pd.isna(jin["n_lost"]) and pd.isna(jin["value_lost"]) and jin["suppressed"]          # 2 lost
    assert pd.isna(zhong["n_followed"]) and zhong["suppressed"]                                  # 3 followed
    assert pd.isna(zhong["n_lost"])        # 5 lost, withheld so that 14 − 7 does not give jinshang's 2 away
    assert pd.isna(feng["n_followed"]) and feng["n_lost"] == 7 and feng["value_lost"] == pytest.approx(0.5)
    reg, flo = _row(tiny, "hukou_group", "registered"), _row(tiny, "hukou_group", "floating")
    assert pd.isna(flo["n_followed"]) and flo["n_lost"] == 8                                    # 2 followed
    assert pd.isna(reg["n_followed"]) and reg["n_lost"] == 6                                    # complement
    assert "yulu" not in set(tiny["level"])           # f01's repeated baseline response is not counted


def test_nobody_linked(config, books):
    table = attrition_table({"parent": {"2024-needs": _baseline(), "2024Q4": _later(["n01", "n02", ""])}},
                            books, config)
    head = _row(table, "respondents")
    assert (head["n_followed"], head["n_lost"]) == (0, 24)
    row = _row(table, "pcc_score")
    assert row["suppressed"] and pd.isna(row["p_value"])


def test_no_link_gives_zero_pairs_not_empty(config, books):
    """outcomes.csv: a panel comparison where no respondent key links has n_pairs 0 (it used to be empty)."""
    frames = {"2024-needs": _baseline(), "2024Q4": _later(["n01", "n02", ""])}
    out = outcome_table({"parent": frames}, books, config)
    panel = out[out["scope"] == "panel"]
    assert len(panel) == 1 and panel["indicator"].iloc[0] == "pcc_score"
    assert panel["n_pairs"].iloc[0] == 0 and panel["suppressed"].iloc[0]
    assert out.loc[out["scope"] == "cross_section", "n_pairs"].isna().all()


# ---------------------------------------------------------------- the demo
def _latest(root: Path) -> str:
    return sorted(p.name for p in (root / "reports").glob("20*Q*"))[-1]


def _read(root: Path) -> pd.DataFrame:
    """attrition.csv as published: empty cells are missing numbers, or empty text in the text columns."""
    table = pd.read_csv(root / "reports" / _latest(root) / "tables" / "attrition.csv", encoding="utf-8-sig",
                        keep_default_na=False, na_values=[""])
    for col in ("characteristic", "level", "stat", "test", "effect_size_name", "note"):
        table[col] = table[col].fillna("").astype(str)
    return table


@pytest.mark.slow
def test_demo_attrition_table_counts_the_clean_data(run_root):
    table = _read(run_root)
    assert list(table.columns) == COLUMNS
    assert set(table["instrument"]) == {"parent", "child", "community"}      # the activity form has no panel
    clean = run_root / "data_clean"
    baseline = "2024-needs"
    checked = levels_checked = 0
    for inst in ("parent", "child", "community"):
        base = pd.read_parquet(clean / baseline / f"{inst}.parquet", columns=["respondent_key"])
        keys = base["respondent_key"].fillna("").astype(str)
        keyed = set(keys[keys != ""])
        for (post,), part in table[table["instrument"] == inst].groupby(["post_wave"]):
            later = pd.read_parquet(clean / post / f"{inst}.parquet", columns=["respondent_key"])
            followed = keyed & (set(later["respondent_key"].fillna("").astype(str)) - {""})
            head = part[part["characteristic"] == "respondents"].iloc[0]
            assert head["n_followed"] + head["n_lost"] == len(keyed), (inst, post)
            assert head["n_followed"] == len(followed), (inst, post)
            assert head["n_unkeyed"] == int((keys == "").sum())
            # a characteristic's levels add up to its answered total wherever nothing is withheld
            for name, grp in part[(part["stat"] == "share") & (part["level"] != "")].groupby("characteristic"):
                summary = part[(part["characteristic"] == name) & (part["level"] == "")]
                assert len(summary) == 1, (inst, post, name)
                if not grp["suppressed"].any():
                    assert grp["n_followed"].sum() == summary["n_followed"].iloc[0]
                    assert grp["n_lost"].sum() == summary["n_lost"].iloc[0]
                    assert grp["value_followed"].sum() == pytest.approx(1.0)
                    levels_checked += 1
            checked += 1
    assert checked == 15 and levels_checked > 30
    shown = table.dropna(subset=["n_followed"])
    assert not ((shown["n_followed"] > 0) & (shown["n_followed"] < 5)).any()
    assert not ((table["n_lost"] > 0) & (table["n_lost"] < 5)).any()


@pytest.mark.slow
def test_demo_attrition_finds_the_planted_dropout(run_root):
    """The demo's panel keeps high-response groups more often (pipelines/demo/sampling.py: propensity by
    compound, age band and hukou): floating parents must be over-represented among the lost."""
    truth = json.loads((run_root / "demo_truth.json").read_text(encoding="utf-8"))
    assert truth["samples"]
    table = _read(run_root)
    floating = table[(table["instrument"] == "parent") & (table["characteristic"] == "hukou_group")
                     & (table["level"] == "floating")]
    assert len(floating) == 5
    assert (floating["value_lost"] > floating["value_followed"]).all()
    tested = table[(table["level"] == "") & table["p_value"].notna()]
    assert set(tested["test"]) <= {"chisq", "fisher_exact", "welch_t"} and len(tested) > 50
    assert np.isfinite(tested["p_value"]).all()
