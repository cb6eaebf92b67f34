"""Quarterly trend models (pipelines.trends, tables/trends.csv): the REML random-intercept model against R's
nlme::lme and statsmodels' MixedLM, the cumulative-logit model against MASS::polr and OrderedModel, honest
non-convergence, statsmodels kept out of a run, and the demo's table against counts from the clean data."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import trends

# ---------------------------------------------------------------- a small unbalanced panel (3 waves)
# 8 respondents answered all three waves, 8 answered once or twice: generated once (numpy seed 11) and
# frozen here so R can read the same numbers.
IDS = ["r00", "r00", "r00", "r01", "r01", "r01", "r02", "r02", "r02", "r03", "r03", "r03", "r04", "r04", "r04",
       "r05", "r05", "r05", "r06", "r06", "r06", "r07", "r07", "r07", "r08", "r09", "r10", "r11", "r11", "r12",
       "r13", "r14", "r15", "r15"]
WAVES = ["w0", "w1", "w2"] * 8 + ["w0", "w1", "w2", "w0", "w2", "w0", "w1", "w2", "w0", "w2"]
Y = [3.9, 4.2, 3.6, 2.4, 3.4, 3.6, 2.6, 5.1, 4.6, 3.6, 3.9, 4.9, 3.7, 4.1, 5.1, 1.2, 2.8, 2.6, 0.6, 1.2, 1.3, 1.5,
     2.4, 2.3, 2.5, 3.9, 5.1, 2.3, 3.9, 3.9, 1.7, 2.0, 3.4, 3.6]

# an ordinal item (answers 1–4) in three waves of 20 independent respondents
ORD_WAVES = ["w0", "w1", "w2"] * 20
ORD_Y = [2, 3, 1, 1, 4, 3, 1, 2, 1, 1, 1, 4, 2, 1, 4, 1, 1, 3, 4, 1, 4, 1, 1, 1, 1, 3, 3, 3, 1, 2, 1, 4, 4, 1, 2, 2,
         3, 1, 1, 2, 2, 4, 3, 3, 3, 3, 3, 4, 1, 3, 2, 2, 4, 4, 3, 1, 2, 1, 4, 2]


def _panel() -> pd.DataFrame:
    return pd.DataFrame({"respondent_key": IDS, "wave": WAVES, "y": Y})


def test_mixed_trend_equals_r_nlme():
    # R 4.2.2, nlme 3.1.162:
    #   d$wave <- factor(d$wave, levels = c("w0", "w1", "w2"))
    #   m <- lme(y ~ wave, random = ~1 | id, data = d, method = "REML"); summary(m)$tTable; VarCorr(m)
    #                  Value    Std.Error DF  t-value      p-value
    #   (Intercept) 2.5460625119 0.3152231271 16 8.077016860 4.896168235e-07
    #   wavew1      0.8777374518 0.2336069701 16 3.757325611 1.720941978e-03
    #   wavew2      1.0081256667 0.2155858112 16 4.676215290 2.528850580e-04
    #   Variance: (Intercept) 1.2047122, Residual 0.2401101
    res = trends.mixed_trend(_panel(), "y", waves=["w0", "w1", "w2"])
    assert res["converged"] and res["baseline"] == "w0"
    table = res["table"].set_index("wave")
    assert table.loc["w1", "effect"] == pytest.approx(0.8777374518, abs=1e-6)
    assert table.loc["w2", "effect"] == pytest.approx(1.0081256667, abs=1e-6)
    assert table.loc["w1", "se"] == pytest.approx(0.2336069701, abs=1e-6)
    assert table.loc["w2", "se"] == pytest.approx(0.2155858112, abs=1e-6)
    assert res["intercept"] == pytest.approx(2.5460625119, abs=1e-6)
    assert res["sigma2_u"] == pytest.approx(1.2047122, abs=1e-5)
    assert res["sigma2"] == pytest.approx(0.2401101, abs=1e-6)
    # Wald z interval and p, as statsmodels' MixedLM reports them (nlme gives t on 16 df instead)
    assert table.loc["w1", "ci_low"] == pytest.approx(0.8777374518 - 1.959963985 * 0.2336069701, abs=1e-5)
    assert (res["n"], res["groups"], res["linked"]) == (34, 16, 10)


def test_mixed_trend_agrees_with_statsmodels_mixedlm():
    """Same REML optimum as MixedLM; MixedLM's SEs invert its joint observed Hessian, within ~1% here."""
    ours = trends.mixed_trend(_panel(), "y", waves=["w0", "w1", "w2"])
    sm = trends.mixed_trend(_panel(), "y", waves=["w0", "w1", "w2"], engine="statsmodels")
    assert sm["converged"]
    a, b = ours["table"].set_index("wave"), sm["table"].set_index("wave")
    assert np.allclose(a["effect"], b["effect"], atol=1e-5)
    assert np.allclose(a["se"], b["se"], rtol=0.01)
    assert ours["sigma2_u"] == pytest.approx(sm["sigma2_u"], rel=1e-4)


def test_ordinal_trend_equals_r_polr_with_the_logit_link():
    # R 4.2.2, MASS 7.3.58.2:
    #   o$y <- factor(o$y, ordered = TRUE); p <- polr(y ~ wave, data = o, Hess = TRUE, method = "logistic")
    #   coef(summary(p)):
    #                   Value   Std. Error      t value
    #   wavew1 0.60919481815 0.5852335487 1.0409430892
    #   wavew2 1.34580164821 0.5882302747 2.2878823243
    #   1|2    0.06135531858 0.4221364422 0.1453447569
    #   2|3    0.92128486293 0.4348829214 2.1184664140
    #   3|4    2.10372527979 0.4991579352 4.2145484051
    #   logLik(p): -78.34840398 (df=5)
    frame = pd.DataFrame({"wave": ORD_WAVES, "y": ORD_Y})
    res = trends.ordinal_trend(frame, "y", waves=["w0", "w1", "w2"], key_col=None)
    assert res["converged"] and res["link"] == "logit"
    table = res["table"].set_index("wave")
    assert table.loc["w1", "log_odds"] == pytest.approx(0.60919481815, abs=2e-5)
    assert table.loc["w2", "log_odds"] == pytest.approx(1.34580164821, abs=2e-5)
    assert table.loc["w1", "se"] == pytest.approx(0.5852335487, abs=2e-5)
    assert table.loc["w2", "se"] == pytest.approx(0.5882302747, abs=2e-5)
    X = trends._design(frame, "wave", ["w0", "w1", "w2"])[:, 1:]
    fit = trends.proportional_odds(np.asarray(ORD_Y), X)
    assert np.allclose(fit["thresholds"], [0.06135531858, 0.92128486293, 2.10372527979], atol=2e-5)
    assert fit["loglik"] == pytest.approx(-78.34840398, abs=1e-6)
    sm = trends.ordinal_trend(frame, "y", waves=["w0", "w1", "w2"], key_col=None, engine="statsmodels")
    assert np.allclose(sm["table"]["log_odds"], res["table"]["log_odds"], atol=1e-4)


def test_a_model_that_cannot_converge_says_so_and_has_no_coefficients():
    # nobody answered twice: the person and residual variances cannot be told apart
    once = pd.DataFrame({"respondent_key": [f"k{i}" for i in range(30)], "wave": ["w0", "w1", "w2"] * 10,
                         "y": np.arange(30) % 7 / 2.0})
    res = trends.mixed_trend(once, "y", waves=["w0", "w1", "w2"])
    assert not res["converged"] and res["table"].empty and "not identifiable" in res["note"]
    # answers of the same person anti-correlated: the REML optimum of σ²_u is at the boundary 0
    rng = np.random.default_rng(3)
    keys = np.repeat([f"p{i}" for i in range(40)], 2)
    waves = np.tile(["w0", "w1"], 40).tolist()
    base = rng.normal(0, 1, 40)
    y = np.column_stack([base, -base]).ravel() + rng.normal(0, 0.1, 80)
    res = trends.mixed_trend(pd.DataFrame({"respondent_key": keys, "wave": waves, "y": y}), "y", waves=["w0", "w1"])
    assert not res["converged"] and res["table"].empty and "boundary" in res["note"]


def test_non_converged_models_publish_no_coefficient(config, books, monkeypatch):
    panel = _panel()
    ids = {"w0": "2024-needs", "w1": "2024Q4", "w2": "2025Q1"}
    frames = {ids[w]: grp.assign(wave=ids[w]).rename(columns={"y": "who5_score"}) for w, grp in panel.groupby("wave")}
    table = trends.trend_table({"child": frames}, books, config)
    assert list(table.columns) == trends.TREND_COLUMNS
    who5 = table[table["indicator"] == "who5_score"]
    assert who5["converged"].all() and list(who5["wave"]) == ["2024Q4", "2025Q1"]
    assert who5["estimate"].iloc[0] == pytest.approx(0.8777374518, abs=1e-6)     # R's value above
    assert (who5["model"] == "mixed_lm_reml").all() and (who5["link"] == "identity").all()
    monkeypatch.setattr(trends, "random_intercept_reml",
                        lambda *a, **k: {"converged": False, "note": "stopped early (test)"})
    failed = trends.trend_table({"child": frames}, books, config)
    row = failed[failed["indicator"] == "who5_score"]
    assert len(row) == 1 and not row["converged"].iloc[0] and row["wave"].iloc[0] == ""
    assert row[["estimate", "se", "ci_low", "ci_high", "p_value"]].isna().all(axis=None)
    assert row["note"].iloc[0] == "stopped early (test)"


def test_a_run_does_not_import_statsmodels():
    """statsmodels costs ~2 s to import; the analysis stage must not pull it in."""
    code = ("import sys, pipelines.analyze, pipelines.trends, pipelines.publish, pipelines.report.longitudinal;"
            "sys.exit(1 if any(m.startswith('statsmodels') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1]).returncode == 0


# ---------------------------------------------------------------- the demo
def _latest(root: Path) -> str:
    return sorted(p.name for p in (root / "reports").glob("20*Q*"))[-1]


@pytest.mark.slow
def test_demo_trends_table(run_root):
    table = pd.read_csv(run_root / "reports" / _latest(run_root) / "tables" / "trends.csv", encoding="utf-8-sig",
                        keep_default_na=False, na_values=[""])
    table["wave"] = table["wave"].fillna("")
    assert list(table.columns) == trends.TREND_COLUMNS
    waves = sorted(p.name for p in (run_root / "data_clean").iterdir() if p.is_dir())
    # every scale of the three population surveys has a mixed model, every ordinal single item a logit model
    mixed = table[table["model"] == "mixed_lm_reml"]
    assert set(mixed["link"]) == {"identity"} and set(table.loc[table["model"] == "ordinal_logit", "link"]) == {"logit"}
    assert mixed.drop_duplicates(["instrument", "indicator"]).shape[0] == 11
    # a converged model has one row per later wave; one that did not has a single row and no numbers
    for (inst, ind), grp in table.groupby(["instrument", "indicator"]):
        if grp["converged"].all():
            assert sorted(grp["wave"]) == [w for w in waves if w != "2024-needs"], (inst, ind)
            assert grp["estimate"].notna().all() and (grp["ci_low"] < grp["ci_high"]).all()
        else:
            assert len(grp) == 1 and grp["estimate"].isna().all()
    # the counts are the clean data's
    who5 = table[table["indicator"] == "who5_score"].iloc[0]
    values = pd.concat([pd.read_parquet(run_root / "data_clean" / w / "child.parquet",
                                        columns=["respondent_key", "who5_score"]) for w in waves])
    answered = values[values["who5_score"].notna()]
    keys = answered["respondent_key"].fillna("").astype(str)
    assert who5["n_obs"] == len(answered)
    assert who5["n_respondents"] == keys[keys != ""].nunique() + int((keys == "").sum())
    per_wave = table[table["indicator"] == "who5_score"].set_index("wave")["n_wave"]
    for w in per_wave.index:
        frame = pd.read_parquet(run_root / "data_clean" / w / "child.parquet", columns=["who5_score"])
        assert per_wave[w] == frame["who5_score"].notna().sum()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("Rscript") is None, reason="R is not installed: the nlme cross-check needs Rscript")
def test_demo_mixed_model_equals_r_nlme(run_root, tmp_path):
    """The published WHO-5 wave effects are what nlme::lme(REML) gives on the same clean data."""
    check = subprocess.run(["Rscript", "-e", "quit(status = !requireNamespace('nlme', quietly = TRUE))"])
    if check.returncode:
        pytest.skip("R's nlme package is not installed")
    waves = sorted(p.name for p in (run_root / "data_clean").iterdir() if p.is_dir())
    data = pd.concat([pd.read_parquet(run_root / "data_clean" / w / "child.parquet",
                                      columns=["respondent_key", "wave", "who5_score"]) for w in waves])
    data = data[data["who5_score"].notna()].reset_index(drop=True)
    keys = data["respondent_key"].fillna("").astype(str)
    data["id"] = np.where(keys == "", "anon-" + data.index.astype(str), keys)
    data[["id", "wave", "who5_score"]].to_csv(tmp_path / "who5.csv", index=False)
    script = (f"library(nlme); d <- read.csv('{tmp_path / 'who5.csv'}'); "
              f"d$wave <- factor(d$wave, levels = c({', '.join(repr(w) for w in waves)})); "
              "m <- lme(who5_score ~ wave, random = ~1 | id, data = d, method = 'REML'); "
              "write.csv(summary(m)$tTable, stdout())")
    out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, check=True).stdout
    r = pd.read_csv(pd.io.common.StringIO(out), index_col=0)
    table = pd.read_csv(run_root / "reports" / _latest(run_root) / "tables" / "trends.csv", encoding="utf-8-sig",
                        keep_default_na=False, na_values=[""])
    ours = table[table["indicator"] == "who5_score"].set_index("wave")
    for w in waves[1:]:
        assert ours.loc[w, "estimate"] == pytest.approx(r.loc[f"wave{w}", "Value"], abs=1e-5)
        assert ours.loc[w, "se"] == pytest.approx(r.loc[f"wave{w}", "Std.Error"], rel=1e-5)
