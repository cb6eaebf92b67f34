"""The batched estimator equals the one-at-a-time reference (pipelines.survey, itself held to R)."""
import numpy as np
import pandas as pd
import pytest

from pipelines import survey
from pipelines.estimates import BatchEstimator, estimate_table

R_DATA = "tests/data/r/apiclus1.csv"


@pytest.fixture(scope="module")
def api(repo_root):
    return pd.read_csv(repo_root / R_DATA)


def _compare(design, frame, var, level=None, mask=None):
    est = BatchEstimator(design)
    raw = pd.to_numeric(frame[var], errors="coerce").to_numpy(dtype=float)
    defined = ~np.isnan(raw) & (np.ones(len(frame), bool) if mask is None else mask)
    y = np.where(raw == level, 1.0, 0.0) if level is not None else np.nan_to_num(raw)
    got = est.run(y[:, None], defined[:, None], np.array([level is not None])).iloc[0]
    ref = (survey.proportion(design, var, level, domain_mask=mask) if level is not None
           else survey.mean(design, var, domain_mask=mask))
    for key in ("estimate", "se", "ci_low", "ci_high", "deff"):
        assert got[key] == pytest.approx(ref[key], rel=1e-9), key
    assert got["n"] == ref["n"] and got["df"] == ref["df"]


def test_cluster_design_mean_equals_reference(api):
    # R: svymean(~api00, svydesign(id=~dnum, weights=~pw, fpc=~fpc, data=apiclus1)) = 644.17, SE 23.542
    design = survey.make_design(api, "pw", psu="dnum", fpc="fpc")
    _compare(design, api, "api00")
    est = BatchEstimator(design).run(api[["api00"]].to_numpy(float), np.ones((len(api), 1), bool), np.array([False]))
    assert est["estimate"].iloc[0] == pytest.approx(644.1694, abs=1e-4)
    assert est["se"].iloc[0] == pytest.approx(23.54224, abs=1e-4)


def test_domain_and_proportion_equal_reference(api):
    design = survey.make_design(api, "pw", psu="dnum", fpc="fpc")
    elementary = (api["stype"] == "E").to_numpy()
    _compare(design, api, "api00", mask=elementary)
    api = api.assign(yes=(api["sch.wide"] == "Yes").astype(float))
    design = survey.make_design(api, "pw", psu="dnum", fpc="fpc")
    _compare(design, api, "yes", level=1.0)


def test_raked_design_equals_reference(api):
    # the survey package's rake() example margins (stype, sch.wide)
    design = survey.make_design(api, "pw", psu="dnum", fpc="fpc")
    margins = {"stype": {"E": 4421, "H": 755, "M": 1018}, "sch.wide": {"No": 1072, "Yes": 5122}}
    raked, _ = survey.rake_design(design, margins, max_iter=100, tol=1e-10)
    _compare(raked, raked.data, "api00")
    _compare(raked, raked.data, "api00", mask=(raked.data["stype"] == "M").to_numpy())


def test_respondents_as_psus_equal_reference(api):
    """The pipeline's own designs (strata, no clusters, raked): the row-PSU shortcut, against the reference."""
    design = survey.make_design(api, "pw", strata="stype")
    assert BatchEstimator(design).row_psu
    _compare(design, api, "api00")
    _compare(design, api, "api00", mask=(api["sch.wide"] == "Yes").to_numpy())
    raked, _ = survey.rake_design(design, {"sch.wide": {"No": 1072, "Yes": 5122}}, max_iter=100, tol=1e-10)
    _compare(raked, raked.data, "api00", mask=(raked.data["stype"] == "H").to_numpy())


def test_low_rank_raking_map_equals_the_ten_passes(api):
    """The collapsed map Z - U K V'Z equals svyrecvar's literal loop: 10 passes over the margins, each
    removing the margin's weighted means (two margins, so the passes interact)."""
    design = survey.make_design(api, "pw", strata="stype")
    margins = {"sch.wide": {"No": 1072, "Yes": 5122}, "stype": {"E": 4421, "H": 755, "M": 1018}}
    raked, _ = survey.rake_design(design, margins, max_iter=100, tol=1e-10)
    est = BatchEstimator(raked)
    Z = np.random.default_rng(3).normal(size=(len(api), 4))
    literal = Z.copy()
    for _ in range(10):
        for G, counts, psw in est.margins:
            means = (G.T @ (literal / psw[:, None])) / counts[:, None]
            literal = literal - psw[:, None] * (G @ means)
    np.testing.assert_allclose(est._residualise(Z), literal, rtol=1e-10, atol=1e-10)


def test_demo_table_estimates_recover_known_shares(books, config):
    """On a constructed table with equal weights the estimate is the sample share, small cells suppressed."""
    book = books["community"]
    n = 40
    frame = pd.DataFrame({q: pd.array([1] * 30 + [2] * 10, dtype="Int64") for q in ["hukou"]})
    frame["compound"] = ["jinshang"] * 38 + ["yulu"] * 2
    frame["w"] = 1.0
    frame["stratum"] = "all"
    design = survey.make_design(frame, "w", strata="stratum")
    table = estimate_table(frame, book, design, "2024-needs", min_cell=5)
    row = table[(table.indicator == "hukou") & (table.level == "1") & (table.group_var == "")].iloc[0]
    assert row["estimate"] == pytest.approx(0.75) and row["n"] == n
    small = table[(table.group_var == "compound") & (table.group == "yulu")]
    assert small["suppressed"].all() and small["estimate"].isna().all()
