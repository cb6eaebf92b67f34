"""pipelines.stats against R (no R needed to run).

Reference values: R 4.2.2 (Debian r-base-core 4.2.2.20221110-2) ``stats``, MASS 7.3-58.2 and
psych 2.2.9, from tests/data/r/make_reference.R (full output: tests/data/r/reference_output.txt).
Convention: ``paired(pre, post)`` is R's ``t.test(post, pre, paired=TRUE)``; ``independent(a, b)``
reports R's ``wilcox.test(b, a)`` W.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from pipelines import stats

DATA = Path(__file__).parent / "data" / "r"
R4 = dict(rel=1e-6)  # the brief asks >= 4 significant digits; these hold to 6
# Student's sleep data: extra hours, group 1 and group 2 (R's datasets::sleep)
SLEEP1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
# ?wilcox.test: Hollander & Wolfe depression scores, first (x) and second (y) visit
WX = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
WY = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]
# ?wilcox.test two-sample example (permeability constants)
XA = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
YB = [1.15, 0.88, 0.90, 0.74, 1.21]


def pairs_from_table(table):
    """Expand a pre × post count table into paired vectors (row = pre, column = post)."""
    pre, post = [], []
    for (i, j), count in np.ndenumerate(np.asarray(table)):
        pre += [i] * int(count)
        post += [j] * int(count)
    return pre, post


def test_paired_t_sleep():
    # t.test(extra[group == 2], extra[group == 1], paired=TRUE): t = 4.0621, df = 9, p = 0.002833
    r = stats.paired(SLEEP1, SLEEP2)
    assert r["test"] == "paired_t" and r["n_pairs"] == 10
    assert r["statistic"] == pytest.approx(4.06212768338204, **R4)
    assert r["df"] == 9
    assert r["p_value"] == pytest.approx(0.00283289019738427, **R4)
    assert (r["diff_ci_low"], r["diff_ci_high"]) == pytest.approx((0.700114236723018, 2.45988576327698), **R4)
    assert r["diff"] == pytest.approx(1.58)
    assert r["effect_size_name"] == "cohen_dz"
    d = np.subtract(SLEEP2, SLEEP1)
    assert r["effect_size"] == pytest.approx(d.mean() / d.std(ddof=1))
    # the d_z interval inverts the noncentral t: t_obs sits at the 97.5% / 2.5% points
    n = 10
    assert sps.nct.cdf(r["statistic"], n - 1, r["es_ci_low"] * math.sqrt(n)) == pytest.approx(0.975)
    assert sps.nct.cdf(r["statistic"], n - 1, r["es_ci_high"] * math.sqrt(n)) == pytest.approx(0.025)


def test_paired_t_anorexia_cbt():
    # MASS::anorexia, Treat == "CBT": t.test(Postwt, Prewt, paired=TRUE): t = 2.2156, df = 28, p = 0.03502
    df = pd.read_csv(DATA / "anorexia_cbt.csv")
    r = stats.paired(df["Prewt"], df["Postwt"], level="interval")
    assert r["n_pairs"] == 29
    assert r["statistic"] == pytest.approx(2.21558784393117, **R4)
    assert r["p_value"] == pytest.approx(0.0350225975621888, **R4)
    assert (r["diff_ci_low"], r["diff_ci_high"]) == pytest.approx((0.226890158358777, 5.7869029450895), **R4)
    # wilcox.test(Postwt, Prewt, paired=TRUE) (ties -> normal approximation): V = 303.5, p = 0.06447
    w = stats.paired(df["Prewt"], df["Postwt"], level="ordinal")
    assert w["test"] == "wilcoxon_normal_cc"
    assert w["statistic"] == 303.5
    assert w["p_value"] == pytest.approx(0.0644656393443706, **R4)


def test_wilcoxon_exact_help_example():
    # wilcox.test(x, y, paired=TRUE): V = 40, p = 0.03906; our diff is post - pre, so pre = y, post = x
    r = stats.paired(WY, WX, level="ordinal")
    assert r["test"] == "wilcoxon_exact"
    assert r["statistic"] == 40 and r["p_value"] == pytest.approx(0.0390625, **R4)
    # wilcox.test(y, x, paired=TRUE): V = 5, same p
    r2 = stats.paired(WX, WY, level="ordinal")
    assert r2["statistic"] == 5 and r2["p_value"] == pytest.approx(0.0390625, **R4)
    # rank-biserial = (R+ - R-) / (R+ + R-) = (40 - 5) / 45
    assert r["effect_size"] == pytest.approx(35 / 45) and r2["effect_size"] == pytest.approx(-35 / 45)
    # wilcox.test(x, y, paired=TRUE, exact=FALSE): p = 0.04401
    n = stats.paired(WY, WX, level="ordinal", method="wilcoxon_normal_cc")
    assert n["test"] == "wilcoxon_normal_cc" and n["p_value"] == pytest.approx(0.0440109840129515, **R4)


def test_wilcoxon_exact_falls_back_like_r_with_ties_and_zeros():
    # wilcox.test(sleep2, sleep1, paired=TRUE): a zero and ties -> normal approx: V = 45, p = 0.009091
    r = stats.paired(SLEEP1, SLEEP2, level="ordinal", method="wilcoxon_exact")
    assert r["test"] == "wilcoxon_normal_cc"
    assert r["statistic"] == 45 and r["p_value"] == pytest.approx(0.00909069801592506, **R4)


def test_mann_whitney():
    # wilcox.test(yb, xa): W = 15, exact p = 0.2544
    r = stats.independent(XA, YB, level="ordinal")
    assert r["test"] == "mann_whitney_exact" and r["n_pairs"] is None
    assert r["statistic"] == 15 and r["p_value"] == pytest.approx(0.254412254412254, **R4)
    assert r["effect_size"] == pytest.approx(2 * 15 / 50 - 1)
    # wilcox.test(yb, xa, exact=FALSE): p = 0.2446
    n = stats.independent(XA, YB, level="ordinal", method="mann_whitney_normal_cc")
    assert n["statistic"] == 15 and n["p_value"] == pytest.approx(0.244623605126983, **R4)
    # wilcox.test(sleep2, sleep1) (ties): W = 74.5, p = 0.06933
    s = stats.independent(SLEEP1, SLEEP2, level="ordinal")
    assert s["test"] == "mann_whitney_normal_cc"
    assert s["statistic"] == 74.5 and s["p_value"] == pytest.approx(0.0693275754336266, **R4)


def test_welch_sleep():
    # t.test(sleep2, sleep1): t = 1.8608, df = 17.776, p = 0.07939 (R's printed t.test(extra ~ group) is -1.8608)
    r = stats.independent(SLEEP1, SLEEP2)
    assert r["test"] == "welch_t"
    assert r["statistic"] == pytest.approx(1.86081346748685, **R4)
    assert r["df"] == pytest.approx(17.7764735161785, **R4)
    assert r["p_value"] == pytest.approx(0.0793941401873582, **R4)
    assert (r["diff_ci_low"], r["diff_ci_high"]) == pytest.approx((-0.20548323071171, 3.36548323071171), **R4)
    assert r["effect_size_name"] == "hedges_g" and r["es_ci_low"] < r["effect_size"] < r["es_ci_high"]


def test_mcnemar_cc_performance():
    # ?mcnemar.test: Performance <- matrix(c(794, 86, 150, 570), nrow = 2) (1st survey rows, 2nd columns);
    # mcnemar.test(Performance): McNemar's chi-squared = 16.818, df = 1, p = 4.115e-05 (R 4.2.2 output)
    pre, post = pairs_from_table([[570, 86], [150, 794]])  # 0 = disapprove, 1 = approve
    r = stats.paired(pre, post, level="binary")
    assert r["test"] == "mcnemar_cc"
    assert r["statistic"] == pytest.approx(16.8177966101695, **R4)
    assert r["df"] == 1 and r["p_value"] == pytest.approx(4.11456228134594e-05, **R4)
    assert r["effect_size"] == pytest.approx(86 / 150)
    # binom.test(86, 236): p = 3.716e-05
    e = stats.paired(pre, post, level="binary", method="mcnemar_exact")
    assert e["p_value"] == pytest.approx(3.71593613957143e-05, **R4)


def test_mcnemar_exact_small():
    # binom.test(3, 13): p = 0.09229, 95% CI 0.05038 to 0.5381
    pre, post = pairs_from_table([[4, 3], [10, 2]])
    r = stats.paired(pre, post, level="binary")
    assert r["test"] == "mcnemar_exact" and r["statistic"] == 3
    assert r["p_value"] == pytest.approx(0.09228515625, **R4)
    lo, hi = 0.0503810734911515, 0.538131539234041
    assert (r["es_ci_low"], r["es_ci_high"]) == pytest.approx((lo / (1 - lo), hi / (1 - hi)), **R4)
    assert r["mean_pre"] == pytest.approx(12 / 19) and r["diff"] == pytest.approx((3 - 10) / 19)


def test_fisher_exact_tea_tasting():
    # fisher.test(TeaTasting): p = 0.4857, odds ratio 6.408309
    r = stats.independent([1, 0, 0, 0], [1, 1, 1, 0], level="binary")
    assert r["test"] == "fisher_exact"
    assert r["p_value"] == pytest.approx(0.485714285714286, **R4)
    # R's uniroot tolerance (~1e-4) limits its conditional MLE and interval; scipy solves tighter
    assert r["effect_size"] == pytest.approx(6.40830886700579, rel=1e-5)
    assert r["es_ci_low"] == pytest.approx(0.211732915305503, rel=1e-4)
    assert r["es_ci_high"] == pytest.approx(621.933750545417, rel=1e-2)
    # fisher.test(matrix(c(2, 8, 3, 1), 2)): p = 0.09491, OR 0.1051234
    j = stats.independent([1] * 8 + [0], [1, 1, 0, 0, 0], level="binary")
    assert j["p_value"] == pytest.approx(0.0949050949050948, **R4)
    assert j["effect_size"] == pytest.approx(0.105123383059229, rel=1e-4)


def test_chisq():
    # chisq.test(matrix(c(12, 5, 7, 9), 2)) (Yates): X-squared = 1.456, p = 0.2276
    r = stats.independent([1] * 5 + [0] * 9, [1] * 12 + [0] * 7, level="binary")
    assert r["test"] == "chisq"
    assert r["statistic"] == pytest.approx(1.45599637881468, **R4)
    assert r["p_value"] == pytest.approx(0.22756821457581, **R4)
    # Woolf interval on the sample odds ratio (12 * 9) / (7 * 5)
    assert r["effect_size"] == pytest.approx(12 * 9 / (7 * 5))
    se = math.sqrt(1 / 12 + 1 / 7 + 1 / 5 + 1 / 9)
    assert r["es_ci_low"] == pytest.approx(12 * 9 / 35 * math.exp(-1.959963984540054 * se))
    # chisq.test(matrix(c(20, 15, 30, 22, 10, 25), 2)): X-squared = 8.3431, df = 2, p = 0.01543
    a = ["A"] * 15 + ["B"] * 22 + ["C"] * 25
    b = ["A"] * 20 + ["B"] * 30 + ["C"] * 10
    n = stats.independent(a, b, level="nominal")
    assert n["statistic"] == pytest.approx(8.34308164953326, **R4)
    assert n["df"] == 2 and n["p_value"] == pytest.approx(0.0154284692323146, **R4)


def test_binary_diff_ci_is_prop_test_wald():
    # prop.test(c(12, 7), c(17, 16), correct=FALSE)$conf.int: -0.05719 to 0.5940
    r = stats.independent([1] * 7 + [0] * 9, [1] * 12 + [0] * 5, level="binary")
    assert (r["diff_ci_low"], r["diff_ci_high"]) == pytest.approx((-0.0571921300730288, 0.593956835955382),
                                                                   **R4)


def test_stuart_maxwell_vision():
    # Stuart (1955) unaided distance vision, 7477 women (right eye rows, left eye columns):
    # Stuart–Maxwell chi-square 11.96 on 3 df (Agresti, Categorical Data Analysis); statsmodels
    # SquareTable(...).homogeneity() gives 11.956569622982544, p = 0.0075334
    vision = [[1520, 266, 124, 66], [234, 1512, 432, 78], [117, 362, 1772, 205], [36, 82, 179, 492]]
    pre, post = pairs_from_table(vision)
    r = stats.paired(pre, post, level="nominal")
    assert r["test"] == "stuart_maxwell" and r["df"] == 3
    assert r["statistic"] == pytest.approx(11.956569622982544, **R4)
    assert r["p_value"] == pytest.approx(0.007533425054800591, **R4)


def test_adjust_equals_p_adjust():
    p = [0.01, 0.04, 0.03, 0.005, 0.2, 0.5]
    # p.adjust(p, "holm"); p.adjust(p, "BH")
    assert stats.adjust(p, "holm") == pytest.approx([0.05, 0.12, 0.12, 0.03, 0.4, 0.5])
    assert stats.adjust(p, "fdr_bh") == pytest.approx([0.03, 0.06, 0.06, 0.03, 0.24, 0.5])
    with_nan = stats.adjust([0.01, float("nan"), 0.04], "holm")
    assert np.isnan(with_nan[1]) and with_nan[[0, 2]] == pytest.approx([0.02, 0.04])
    with pytest.raises(ValueError):
        stats.adjust(p, "bonferroni")


def test_cronbach_alpha_bfi_neuroticism():
    # psych::alpha(na.omit(bfi[, c("N1","N2","N3","N4","N5")])): raw_alpha 0.8133 (n = 2694);
    # psych::alpha.ci(alpha, 2694, 5) (Feldt): 0.80192 to 0.82422
    items = pd.read_csv(DATA / "bfi_neuroticism.csv")
    r = stats.cronbach_alpha(items)
    assert r["n"] == 2694 and r["k"] == 5
    assert r["alpha"] == pytest.approx(0.813303143161439, **R4)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((0.801919990507684, 0.824222922809719), **R4)
    # alpha(...)$item.stats$r.drop
    expected = [0.666285806231686, 0.650902055754828, 0.672947088258613, 0.542148997951895, 0.486729437297526]
    assert stats.item_rest_correlations(items).to_list() == pytest.approx(expected, **R4)


def test_reliable_change():
    r = stats.reliable_change([10, 10, 10, np.nan], [20, 11, 0, 5], sd_baseline=5, reliability=0.8)
    se = math.sqrt(2) * 5 * math.sqrt(0.2)
    assert r["rci"][:3] == pytest.approx([10 / se, 1 / se, -10 / se]) and np.isnan(r["rci"][3])
    assert (r["improved"], r["unchanged"], r["worse"], r["n"]) == (pytest.approx(1 / 3),) * 3 + (3,)


def test_missing_pairs_dropped_and_auto_choices():
    r = stats.paired([1, 2, None, 4, 5, 6], [2, 3, 4, None, 7, 9])
    assert r["n_pairs"] == 4 and r["n_pre"] == 4
    assert stats.paired([1, 2, 3], [2, 4, 6], level="ordinal")["test"] == "wilcoxon_exact"
    big = np.arange(60)
    assert stats.paired(big, big + np.linspace(0.5, 3, 60), level="ordinal")["test"] == "wilcoxon_normal_cc"
    with pytest.raises(ValueError):
        stats.paired([0, 1, 2], [1, 0, 1], level="binary")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(-20, 20), st.integers(-20, 20)), min_size=3, max_size=30))
def test_paired_is_antisymmetric(pairs):
    pre, post = (np.array(v, dtype=float) for v in zip(*pairs))
    for level in ("interval", "ordinal"):
        a, b = stats.paired(pre, post, level), stats.paired(post, pre, level)
        assert a["diff"] == pytest.approx(-b["diff"])
        assert a["test"] == b["test"]
        if np.isfinite(a["p_value"]):
            assert a["p_value"] == pytest.approx(b["p_value"])
    nonzero = np.count_nonzero(post - pre)
    va = stats.paired(pre, post, "ordinal")["statistic"]
    vb = stats.paired(post, pre, "ordinal")["statistic"]
    if nonzero:
        assert va + vb == pytest.approx(nonzero * (nonzero + 1) / 2)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=25), st.lists(st.integers(0, 9), min_size=1, max_size=25))
def test_mann_whitney_w_sums_to_product(a, b):
    wa = stats.independent(b, a, "ordinal")["statistic"]
    wb = stats.independent(a, b, "ordinal")["statistic"]
    assert wa + wb == pytest.approx(len(a) * len(b))


def test_exact_distributions_are_complete():
    from pipelines.stats import _rank_sum_counts, _signed_rank_counts

    assert _signed_rank_counts(10).sum() == 2**10
    assert _rank_sum_counts(5, 10).sum() == math.comb(15, 5)
    # against scipy's exact Mann–Whitney p-value for a case without ties
    a, b = [3.1, 4.5, 2.2, 8.0, 6.1, 7.7], [5.0, 9.1, 10.2, 11.5, 1.0]
    r = stats.independent(a, b, "ordinal")
    assert r["p_value"] == pytest.approx(sps.mannwhitneyu(b, a, method="exact").pvalue)
