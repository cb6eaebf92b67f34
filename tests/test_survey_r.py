"""pipelines.survey against R's survey package on the api data (no R needed to run).

Reference values: R 4.2.2 (Debian r-base-core 4.2.2.20221110-2) with survey 4.1.1, from
tests/data/r/make_reference.R; its full output is tests/data/r/reference_output.txt.  The
CSVs in tests/data/r/ are ``data(api)``'s apiclus1 and apistrat (the columns used here).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import stats, survey

DATA = Path(__file__).parent / "data" / "r"
POP_TYPES = {"E": 4421, "H": 755, "M": 1018}  # survey's ?rake example: pop.types
POP_SCHWIDE = {"No": 1072, "Yes": 5122}  # pop.schwide
SIX = dict(rel=1e-6)  # at least six significant digits


@pytest.fixture(scope="module")
def apiclus1() -> pd.DataFrame:
    df = pd.read_csv(DATA / "apiclus1.csv")
    df["high_api"] = df["api00"] > 700
    return df


@pytest.fixture(scope="module")
def apistrat() -> pd.DataFrame:
    return pd.read_csv(DATA / "apistrat.csv")


@pytest.fixture(scope="module")
def dclus1(apiclus1) -> survey.Design:
    # svydesign(id=~dnum, weights=~pw, data=apiclus1, fpc=~fpc)
    return survey.make_design(apiclus1, "pw", psu="dnum", fpc="fpc")


@pytest.fixture(scope="module")
def rclus1(dclus1):
    # rake(dclus1, list(~stype, ~sch.wide), list(pop.types, pop.schwide))  -- R's default control
    return survey.rake_design(dclus1, {"stype": POP_TYPES, "sch.wide": POP_SCHWIDE}, max_iter=10, tol=1)


def test_cluster_mean_se_deff_ci(dclus1):
    # svymean(~api00, dclus1, deff=TRUE); confint(., df=degf(dclus1))
    r = survey.mean(dclus1, "api00")
    assert r["estimate"] == pytest.approx(644.169398907104, **SIX)
    assert r["se"] == pytest.approx(23.542240693781, **SIX)
    assert r["deff"] == pytest.approx(9.34586945059095, **SIX)
    assert r["df"] == 14 and r["n"] == 183
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((593.676314463326, 694.662483350882), **SIX)


def test_cluster_total(dclus1):
    # svytotal(~enroll, dclus1)
    r = survey.total(dclus1, "enroll")
    assert r["estimate"] == pytest.approx(3404940.13452911, **SIX)
    assert r["se"] == pytest.approx(932235.027041215, **SIX)


def test_cluster_logit_proportion(dclus1):
    # svyciprop(~I(sch.wide == "Yes"), dclus1, method="logit"); deff from svymean of the indicator
    r = survey.proportion(dclus1, "sch.wide", "Yes")
    assert r["estimate"] == pytest.approx(0.87431693988704, **SIX)
    assert r["se"] == pytest.approx(0.0203594772446274, **SIX)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((0.823798892379034, 0.911900077021223), **SIX)
    assert r["deff"] == pytest.approx(0.707429989608998, **SIX)


def test_domain_subset(dclus1, apiclus1):
    # svymean(~api00, subset(dclus1, stype == "E"), deff=TRUE); confint(., df=degf(subset))
    mask = (apiclus1["stype"] == "E").to_numpy()
    r = survey.mean(dclus1, "api00", domain_mask=mask)
    assert r["estimate"] == pytest.approx(648.868055555556, **SIX)
    assert r["se"] == pytest.approx(22.3624088938319, **SIX)
    assert r["deff"] == pytest.approx(6.5836735250278, **SIX)
    assert r["df"] == 14 and r["n"] == 144
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((600.90545865029, 696.830652460821), **SIX)
    # svyciprop(~I(sch.wide == "Yes"), subset(dclus1, stype == "E"), method="logit")
    p = survey.proportion(dclus1, "sch.wide", "Yes", domain_mask=mask)
    assert p["estimate"] == pytest.approx(0.916666666666661, **SIX)
    assert p["se"] == pytest.approx(0.0209842789524908, **SIX)
    assert (p["ci_low"], p["ci_high"]) == pytest.approx((0.859206537056401, 0.95198680147212), **SIX)


def test_missing_answers_are_a_domain(dclus1, apiclus1):
    # svymean(~acs.k3, dclus1, na.rm=TRUE, deff=TRUE): 39 schools have no acs.k3
    r = survey.mean(dclus1, "acs.k3")
    assert r["n"] == 144
    assert r["estimate"] == pytest.approx(20.0347222222222, **SIX)
    assert r["se"] == pytest.approx(0.520488659789729, **SIX)
    assert r["deff"] == pytest.approx(11.0795848556879, **SIX)
    # the same as an explicit domain mask on a variable without missing values
    filled = apiclus1.assign(k3=apiclus1["acs.k3"].fillna(-999))
    d = survey.make_design(filled, "pw", psu="dnum", fpc="fpc")
    r2 = survey.mean(d, "k3", domain_mask=apiclus1["acs.k3"].notna().to_numpy())
    assert r2["estimate"] == pytest.approx(r["estimate"]) and r2["se"] == pytest.approx(r["se"])


def test_by_group(dclus1):
    # svyby(~api00, ~stype, dclus1, svymean)
    r = survey.by(dclus1, "api00", "stype")
    assert list(r) == ["E", "H", "M"]
    assert [r[g]["estimate"] for g in r] == pytest.approx([648.868055555556, 618.571428571429, 631.44], **SIX)
    assert [r[g]["se"] for g in r] == pytest.approx([22.3624088938319, 38.0202493594075, 31.6094652272455], **SIX)
    # domain df as degf(subset(...)): PSUs holding high schools minus one stratum
    assert r["H"]["df"] == 7


def test_rake_weights_equal_r_default_control(rclus1):
    raked, info = rclus1
    # sort(unique(round(weights(rclus1), 10)))
    expected = [29.8704638727, 36.7921816647, 39.8385094106, 49.0700673993, 50.3301527727, 67.1257826263]
    assert sorted(set(np.round(raked.weights, 10))) == pytest.approx(expected, rel=1e-10)
    assert info.converged and info.margins == ("stype", "sch.wide")
    # svytotal(~stype, rclus1): R stops at epsilon=1, so the margins are met to within a unit
    totals = raked.data.groupby("stype")[raked.weight].sum()
    assert totals.to_list() == pytest.approx([4420.96334412761, 755.009028378417, 1018.02762749398], rel=1e-9)


def test_raked_mean_se_deff(rclus1):
    raked, _ = rclus1
    # svymean(~api00, rclus1, deff=TRUE)
    r = survey.mean(raked, "api00")
    assert r["estimate"] == pytest.approx(641.230246862209, **SIX)
    assert r["se"] == pytest.approx(23.7036412402377, **SIX)
    assert r["deff"] == pytest.approx(9.63701688743817, **SIX)


def test_raked_fully_converged(dclus1):
    # rake(..., control=list(maxit=100, epsilon=1e-12)); svymean(~api00, .)
    raked, info = survey.rake_design(dclus1, {"stype": POP_TYPES, "sch.wide": POP_SCHWIDE}, max_iter=100,
                                     tol=1e-12)
    assert info.converged and info.max_margin_error < 1e-6
    r = survey.mean(raked, "api00")
    assert r["estimate"] == pytest.approx(641.23032092682, **SIX)
    assert r["se"] == pytest.approx(23.7036168879225, **SIX)
    # a design rebuilt from design.json knows only the margin columns and the final weights
    rebuilt = survey.Design(raked.data, raked.weight, psu="dnum", fpc="fpc", rake_margins=("stype", "sch.wide"))
    assert survey.mean(rebuilt, "api00")["se"] == pytest.approx(23.7036168879225, **SIX)


def test_raked_domains_and_proportions(rclus1, apiclus1):
    raked, _ = rclus1
    # svyciprop(~I(api00 > 700), rclus1, method="logit")
    p = survey.proportion(raked, "high_api", True)
    assert p["estimate"] == pytest.approx(0.324112334399652, **SIX)
    assert p["se"] == pytest.approx(0.0777097751685966, **SIX)
    assert (p["ci_low"], p["ci_high"]) == pytest.approx((0.183057214575061, 0.50647385566004), **SIX)
    # raked on sch.wide, so its share is fixed: R's SE is 1.9e-13
    fixed = survey.proportion(raked, "sch.wide", "Yes")
    assert fixed["estimate"] == pytest.approx(0.826929286406096, **SIX) and fixed["se"] < 1e-9
    # svymean(~api00, subset(rclus1, stype == "E")); svymean(~acs.k3, rclus1, na.rm=TRUE)
    e = survey.mean(raked, "api00", domain_mask=(apiclus1["stype"] == "E").to_numpy())
    assert e["estimate"] == pytest.approx(647.446640910831, **SIX)
    assert e["se"] == pytest.approx(22.8084172856725, **SIX)
    k3 = survey.mean(raked, "acs.k3")
    assert k3["estimate"] == pytest.approx(20.0292733095062, **SIX)
    assert k3["se"] == pytest.approx(0.521971102112944, **SIX)


def test_stratified_element_sample(apistrat):
    # svydesign(id=~1, strata=~stype, weights=~pw, data=apistrat, fpc=~fpc)
    d = survey.make_design(apistrat, "pw", strata="stype", fpc="fpc")
    r = survey.mean(d, "api00")
    assert r["estimate"] == pytest.approx(662.287363159321, **SIX)
    assert r["se"] == pytest.approx(9.40894080278458, **SIX)
    assert r["deff"] == pytest.approx(1.20445726853772, **SIX)
    assert r["df"] == 197
    p = survey.proportion(d, "sch.wide", "Yes")
    assert p["estimate"] == pytest.approx(0.827948011001957, **SIX)
    assert p["se"] == pytest.approx(0.0243447801130748, **SIX)
    assert (p["ci_low"], p["ci_high"]) == pytest.approx((0.774539654351568, 0.870814854544509), **SIX)


def test_stratified_fpc_forms(apistrat):
    # without fpc: SE 9.53613229692516; fpc as a sampling fraction equals fpc as population size
    no_fpc = survey.make_design(apistrat, "pw", strata="stype")
    assert survey.mean(no_fpc, "api00")["se"] == pytest.approx(9.53613229692516, **SIX)
    frac = apistrat.assign(frac=apistrat.groupby("stype")["pw"].transform("size") / apistrat["fpc"])
    d = survey.make_design(frac, "pw", strata="stype", fpc="frac")
    assert survey.mean(d, "api00")["se"] == pytest.approx(9.40894080278458, **SIX)


@pytest.mark.parametrize("option, se", [("certainty", 10.6163015703078), ("remove", 10.6163015703078),
                                        ("adjust", 10.630702098103)])
def test_lonely_psu(apistrat, option, se):
    # apistrat keeping one high school (snum 627); options(survey.lonely.psu=option), no fpc
    first_h = apistrat.index[apistrat["stype"] == "H"][0]
    lone = apistrat[(apistrat["stype"] != "H") | (apistrat.index == first_h)]
    assert lone.loc[first_h, "snum"] == 627
    with pytest.raises(ValueError, match="only one PSU"):
        survey.mean(survey.make_design(lone, "pw", strata="stype"), "api00")
    r = survey.mean(survey.make_design(lone, "pw", strata="stype", lonely_psu=option), "api00")
    assert r["estimate"] == pytest.approx(666.794801764414, **SIX)
    assert r["se"] == pytest.approx(se, **SIX)


def test_public_wrappers(apiclus1):
    m = stats.survey_mean(apiclus1, "api00", "pw", psu="dnum", fpc="fpc")
    assert {"estimate", "se", "ci_low", "ci_high", "n", "deff"} <= set(m)
    assert m["se"] == pytest.approx(23.542240693781, **SIX)
    p = stats.survey_proportion(apiclus1, "sch.wide", "Yes", "pw", psu="dnum", fpc="fpc")
    assert p["ci_low"] == pytest.approx(0.823798892379034, **SIX)


def test_rake_rejects_unknown_levels(apiclus1):
    with pytest.raises(ValueError, match="not in the population"):
        survey.rake(apiclus1, "pw", {"stype": {"E": 1.0, "H": 2.0}})
    with pytest.raises(ValueError, match="no respondents"):
        survey.rake(apiclus1, "pw", {"stype": {**POP_TYPES, "X": 5}})


def test_kish():
    w = np.array([1.0, 1.0, 2.0, 4.0])
    assert survey.kish_deff(w) == pytest.approx(1 + np.var(w) / np.mean(w) ** 2)
    assert survey.effective_n(w) == pytest.approx(len(w) / survey.kish_deff(w))
    assert survey.kish_deff(np.ones(7)) == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=40),
       st.floats(0.1, 100))
def test_equal_weights_no_design_is_srs_with_replacement(values, w):
    y = np.array(values)
    df = pd.DataFrame({"y": y, "w": w})
    r = stats.survey_mean(df, "y", "w")
    assert r["estimate"] == pytest.approx(y.mean(), abs=1e-9 * (1 + np.abs(y).max()))
    assert r["se"] == pytest.approx(y.std(ddof=1) / np.sqrt(len(y)), rel=1e-7, abs=1e-9)
    assert r["n"] == len(y)
