"""pipelines.stats computes without importing scipy.stats / scipy.optimize (~1.2 s of a cold run's imports).

The routines written out in stats.py in their place (Brent's root finder, the exact binomial test, the
Clopper–Pearson interval, average ranks, the chi-square tail) must return what scipy.stats returns, bit for
bit, so that no published number moves; and they are checked against exact values computed independently.
"""
import math
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special
from scipy import stats as sps

from pipelines import stats


def test_analysis_modules_do_not_import_scipy_stats_or_optimize():
    code = ("import sys, pipelines.analyze, pipelines.estimates, pipelines.stats, pipelines.survey, pipelines.trends; "
            "print(sorted(m for m in ('scipy.stats', 'scipy.optimize') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_scipy_starts_without_numpy_s_test_and_fortran_packages():
    """scipy.special's start-up lists numpy's namespace, which imports numpy.testing and numpy.f2py
    (~0.1 s per process): the pipeline imports scipy with both deferred, and they still work when used."""
    code = ("import sys, pipelines.analyze, pipelines.estimates, pipelines.stats, pipelines.survey, pipelines.trends; "
            "print([type(sys.modules[m]).__name__ for m in ('numpy.testing', 'numpy.f2py')]); "
            "import numpy; numpy.testing.assert_allclose(1.0, 1.0 + 1e-9); "
            "print(type(sys.modules['numpy.testing']).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["['_LazyModule',", "'_LazyModule']", "module"]


def test_exact_binomial_test_and_interval_equal_their_definitions():
    # R: binom.test(3, 12) → p = 2 · P(X ≤ 3) = 598/4096; CI = qbeta(.025, 3, 10), qbeta(.975, 4, 9)
    assert stats._binom_test_p(3, 12, 0.5) == float(Fraction(2 * sum(math.comb(12, i) for i in range(4)), 4096))
    for k, n in [(3, 12), (1, 9), (7, 20), (24, 24), (0, 5), (11, 23)]:
        low, high = stats._clopper_pearson(k, n, 0.95)
        exact_low = 0.0 if k == 0 else special.betaincinv(k, n - k + 1, 0.025)
        exact_high = 1.0 if k == n else special.betaincinv(k + 1, n - k, 0.975)
        # (to brentq's tolerance, xtol 2e-12, as scipy: R's qbeta gives the beta quantiles themselves)
        assert low == pytest.approx(exact_low, rel=0, abs=4e-12)
        assert high == pytest.approx(exact_high, rel=0, abs=4e-12)


@pytest.mark.parametrize("n", range(1, 41))
def test_binomial_routines_match_scipy_bit_for_bit(n):
    for k in range(n + 1):
        result = sps.binomtest(k, n, 0.5)
        assert stats._binom_test_p(k, n, 0.5) == result.pvalue
        ci = result.proportion_ci(0.95, method="exact")
        assert stats._clopper_pearson(k, n, 0.95) == (ci.low, ci.high)
        for p in (0.2, 0.65):
            assert stats._binom_test_p(k, n, p) == sps.binomtest(k, n, p).pvalue


def test_brentq_matches_scipy_on_the_noncentral_t_intervals():
    rng = np.random.default_rng(0)
    for t_obs in [*rng.normal(0, 4, 40), 0.0, 35.0, -60.0]:
        for df in (1, 4, 29, 300):
            for target in (0.975, 0.025):
                def f(ncp, df=df, t_obs=t_obs, target=target):
                    cdf = special.nctdtr(df, ncp, t_obs)
                    return (0.0 if ncp > t_obs else 1.0) - target if np.isnan(cdf) else cdf - target
                lo, hi = t_obs - 60 - abs(t_obs), t_obs + 60 + abs(t_obs)
                assert stats._brentq(f, lo, hi, xtol=1e-12) == optimize.brentq(f, lo, hi, xtol=1e-12)
    assert stats._brentq(lambda x: x * x - 2, 0, 2) == pytest.approx(math.sqrt(2), abs=4e-12)
    with pytest.raises(ValueError):
        stats._brentq(lambda x: x * x + 1, 0, 2)


def test_average_ranks_match_rankdata():
    rng = np.random.default_rng(1)
    for _ in range(300):
        x = rng.integers(0, rng.integers(1, 12), rng.integers(1, 60)).astype(float) * 0.5
        np.testing.assert_array_equal(stats._average_ranks(x), sps.rankdata(x))
    np.testing.assert_array_equal(stats._average_ranks([3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0])
    assert np.isnan(stats._average_ranks([1.0, np.nan])).all()


def test_distribution_functions_match_scipy_stats():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.exponential(4, 500), [0.0, -1e-12, 1e4]])
    for df in (1, 2, 5, 17):
        assert [stats._chi2_sf(v, df) for v in x] == list(sps.chi2.sf(x, df))
    dfs = np.concatenate([np.arange(1, 200), rng.uniform(0.5, 2000, 200)])
    np.testing.assert_array_equal(special.stdtrit(dfs, 0.975), sps.t.ppf(0.975, dfs))
    np.testing.assert_array_equal(special.stdtr(dfs, -x[:len(dfs)]), sps.t.sf(x[:len(dfs)], dfs))
    assert special.ndtri(0.975) == sps.norm.ppf(0.975)
    for d1, d2 in [(9, 27), (99, 396), (2, 2)]:
        assert special.fdtri(d1, d2, 0.025) == sps.f.ppf(0.025, d1, d2)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        (isinstance(a[k], float) and isinstance(b[k], float) and math.isnan(a[k]) and math.isnan(b[k]))
        or a[k] == b[k] for k in a)


@pytest.mark.parametrize("level", ["interval", "ordinal", "binary"])
def test_float_arrays_take_numpy_s_path_to_the_same_results_as_series(level):
    """The analysis stage passes float arrays: their missing values are dropped with numpy, not through
    Series; every field of every result is the same as for the same values given as Series (or lists)."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(2, 80))
        draw = {"interval": lambda: rng.normal(3, 1, n), "ordinal": lambda: rng.integers(1, 6, n).astype(float),
                "binary": lambda: rng.integers(0, 2, n).astype(float)}[level]
        pre, post = draw(), draw()
        pre[rng.random(n) < 0.15] = np.nan
        post[rng.random(n) < 0.15] = np.nan
        assert _same(stats.paired(pre, post, level), stats.paired(pd.Series(pre), pd.Series(post), level))
        m = int(rng.integers(2, 80))
        other = {"interval": rng.normal(3.2, 1, m), "ordinal": rng.integers(1, 6, m).astype(float),
                 "binary": rng.integers(0, 2, m).astype(float)}[level]
        assert _same(stats.independent(pre, other, level), stats.independent(list(pre), list(other), level))
    with pytest.raises(ValueError, match="equal lengths"):
        stats.paired(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="coded 0/1"):
        stats.paired(np.array([0.0, 2.0]), np.array([1.0, 1.0]), "binary")
