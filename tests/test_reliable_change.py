"""Reliable change (tables/reliable_change.csv): Jacobson–Truax shares computed by hand on a small panel,
the baseline yardstick (SD over all baseline respondents, baseline α), suppression, and the demo's table
against outcomes.csv and reliability.csv."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.outcomes import RELIABLE_CHANGE_COLUMNS, reliable_change_table


def _frames():
    # baseline: six keyed parents and one without a key (who counts for the SD, not for the pairs)
    base = pd.DataFrame({"respondent_key": ["a", "b", "c", "d", "e", "f", ""],
                         "pcc_score": [2.0, 3.0, 4.0, 5.0, 6.0, 4.0, 4.0], "wave": "2024-needs"})
    # later: the six again (changes +3, +1, −3, +2.6, −2.5, 0), one newcomer, and g without a baseline
    post = pd.DataFrame({"respondent_key": ["a", "b", "c", "d", "e", "f", "g"],
                         "pcc_score": [5.0, 4.0, 1.0, 7.6, 3.5, 4.0, 1.0], "wave": "2024Q4"})
    return {"2024-needs": base, "2024Q4": post}


def _reliability(alpha: float) -> pd.DataFrame:
    return pd.DataFrame([{"wave": "2024-needs", "instrument": "parent", "scale": "pcc", "alpha": alpha},
                         {"wave": "2024Q4", "instrument": "parent", "scale": "pcc", "alpha": 0.99}])


def test_shares_by_hand(config, books):
    # baseline SD over all 7 baseline answers: mean 4, squared deviations 4+1+0+1+4+0+0 = 10, var 10/6,
    # SD = √(5/3) = 1.2909944; α = 0.5 at baseline (the later wave's 0.99 must not be used):
    # SE_diff = √2 · SD · √(1 − α) = √(5/3) = 1.2909944, reliable when |change| > 1.96 · 1.2909944 = 2.5303490
    # changes +3 (improved), +1, −3 (worse), +2.6 (improved), −2.5 (just inside), 0 → 2 / 3 / 1 of 6
    table = reliable_change_table({"parent": _frames()}, books, config, _reliability(0.5))
    assert list(table.columns) == RELIABLE_CHANGE_COLUMNS
    assert len(table) == 1
    row = table.iloc[0].to_dict()
    assert (row["instrument"], row["indicator"], row["pre_wave"], row["post_wave"]) == \
        ("parent", "pcc_score", "2024-needs", "2024Q4")
    assert row["n"] == 6
    assert row["sd_baseline"] == pytest.approx(math.sqrt(5 / 3))
    assert row["reliability"] == 0.5
    assert row["se_diff"] == pytest.approx(1.2909944, abs=1e-7)
    assert row["improved"] == pytest.approx(2 / 6)
    assert row["unchanged"] == pytest.approx(3 / 6)
    assert row["worse"] == pytest.approx(1 / 6)
    assert not row["suppressed"] and row["note"] == ""


def test_a_higher_alpha_makes_smaller_changes_reliable(config, books):
    # α = 0.9: SE_diff = √2 · √(5/3) · √0.1 = 0.5773503, threshold 1.1316065: +1 stays unchanged, −2.5 is worse
    row = reliable_change_table({"parent": _frames()}, books, config, _reliability(0.9)).iloc[0]
    assert row["se_diff"] == pytest.approx(0.5773503, abs=1e-7)
    assert (row["improved"], row["unchanged"], row["worse"]) == pytest.approx((2 / 6, 2 / 6, 2 / 6))


def test_no_usable_alpha_or_too_few_pairs(config, books):
    row = reliable_change_table({"parent": _frames()}, books, config, _reliability(-0.2)).iloc[0]
    assert pd.isna(row["improved"]) and "reliability" in row["note"]
    frames = _frames()
    frames["2024Q4"] = frames["2024Q4"].iloc[:4]          # four pairs: under the minimum cell of 5
    row = reliable_change_table({"parent": frames}, books, config, _reliability(0.5)).iloc[0]
    assert row["n"] == 4 and row["suppressed"] and pd.isna(row["improved"]) and pd.isna(row["worse"])


# ---------------------------------------------------------------- the demo
def _latest(root: Path) -> str:
    return sorted(p.name for p in (root / "reports").glob("20*Q*"))[-1]


@pytest.mark.slow
def test_demo_reliable_change_table(run_root):
    tables = run_root / "reports" / _latest(run_root) / "tables"
    rc = pd.read_csv(tables / "reliable_change.csv", encoding="utf-8-sig", keep_default_na=False, na_values=[""])
    out = pd.read_csv(tables / "outcomes.csv", encoding="utf-8-sig", keep_default_na=False, na_values=[""])
    rel = pd.read_csv(tables / "reliability.csv", encoding="utf-8-sig")
    assert list(rc.columns) == RELIABLE_CHANGE_COLUMNS
    assert rc.drop_duplicates(["instrument", "indicator"]).shape[0] == 11          # every scale of the surveys
    assert set(rc["pre_wave"]) == {"2024-needs"} and rc["post_wave"].nunique() == 5
    shown = rc[~rc["suppressed"]]
    assert np.allclose(shown[["improved", "unchanged", "worse"]].sum(axis=1), 1.0)
    # the pairs are outcomes.csv's panel pairs, found by a different route (a merge on the key)
    panel = out[out["scope"] == "panel"].set_index(["instrument", "indicator", "pre_wave", "post_wave"])["n_pairs"]
    for r in rc.to_dict("records"):
        assert r["n"] == panel[(r["instrument"], r["indicator"], r["pre_wave"], r["post_wave"])]
    # the yardstick: baseline α from reliability.csv and the baseline SD of the clean scores
    alpha = rel[rel["wave"] == "2024-needs"].set_index(["instrument", "scale"])["alpha"]
    for r in rc.drop_duplicates(["instrument", "indicator"]).to_dict("records"):
        assert r["reliability"] == pytest.approx(alpha[(r["instrument"], r["indicator"][: -len("_score")])])
        scores = pd.read_parquet(run_root / "data_clean" / "2024-needs" / f"{r['instrument']}.parquet",
                                 columns=[r["indicator"]])[r["indicator"]].astype(float).dropna()
        assert r["sd_baseline"] == pytest.approx(scores.std(ddof=1))
        assert r["se_diff"] == pytest.approx(math.sqrt(2) * r["sd_baseline"] * math.sqrt(1 - r["reliability"]))
