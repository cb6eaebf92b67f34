"""The public analysis API (CONTRACT.md §5): pre/post tests, effect sizes, reliability, survey estimates.

Every test reproduces its R counterpart (R 4.2 ``stats``), so an evaluator can re-run a
published number in R.  Results are plain dicts with the ``outcomes.csv`` fields; a
field that does not apply to the test that ran is ``None``, one that applies but could
not be computed (e.g. no variance) is NaN.  Importing this module stays light: no
statsmodels or great_expectations until a function needs them, and no ``scipy.stats`` or
``scipy.optimize`` (~1.2 s of imports together): the distribution functions are the
``scipy.special`` functions scipy.stats itself evaluates, and the two numerical routines
needed besides (Brent's root finder, the exact binomial test) are written out below, step
for step as scipy's, so every number is bit for bit what scipy.stats returns (the tests
compare them).  Only Fisher's exact test, rare in practice, imports scipy.stats.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipelines import survey
from pipelines.lazy import scipy_special as special

_scu = special._ufuncs  # boost's binomial pmf/cdf/sf: what scipy.stats.binom evaluates

LEVELS = ("interval", "ordinal", "binary", "nominal")
PAIRED_METHODS = ("paired_t", "wilcoxon_exact", "wilcoxon_normal_cc", "mcnemar_exact", "mcnemar_cc",
                  "stuart_maxwell")
INDEPENDENT_METHODS = ("welch_t", "mann_whitney_exact", "mann_whitney_normal_cc", "chisq", "fisher_exact")
NAN = float("nan")


def _result(level: str, **fields) -> dict:
    out = dict.fromkeys(("level", "n_pre", "n_post", "n_pairs", "mean_pre", "mean_post", "diff",
                         "diff_ci_low", "diff_ci_high", "test", "statistic", "df", "p_value",
                         "effect_size_name", "effect_size", "es_ci_low", "es_ci_high"))
    out["level"] = level
    for key, value in fields.items():  # plain Python numbers, so results serialise and compare simply
        out[key] = value.item() if isinstance(value, np.generic) else value
    return out


def _t_interval(mean: float, se: float, df: float, conf: float = 0.95) -> tuple[float, float]:
    if not (se > 0 and df > 0):
        return NAN, NAN
    q = special.stdtrit(df, 0.5 + conf / 2)  # scipy.stats.t.ppf(q, df) for df > 0, 0 < q < 1
    return mean - q * se, mean + q * se


def _nct_interval(t_obs: float, df: float, conf: float = 0.95) -> tuple[float, float]:
    """Noncentrality parameters whose t distribution puts t_obs at the (1±conf)/2 quantiles."""
    if not (np.isfinite(t_obs) and df > 0):
        return NAN, NAN

    def solve(target: float) -> float:
        def f(ncp: float) -> float:  # decreasing in ncp; scipy's nct.cdf is NaN deep in a tail
            # `nctdtr(df, ncp, t)` is what scipy's `nct.cdf(t, df, ncp)` evaluates (same value, bit for
            # bit, for the finite t and positive df checked above) without the distribution machinery's
            # argument checks, which cost ~20 times the evaluation itself over thousands of brentq steps
            cdf = special.nctdtr(df, ncp, t_obs)
            return (0.0 if ncp > t_obs else 1.0) - target if np.isnan(cdf) else cdf - target

        width = 10.0 + abs(t_obs)
        lo, hi = t_obs - width, t_obs + width
        while f(lo) < 0:
            lo -= width
        while f(hi) > 0:
            hi += width
        return _brentq(f, lo, hi, xtol=1e-12)

    return solve(0.5 + conf / 2), solve(0.5 - conf / 2)


# --------------------------------------------------------------------------- scipy.stats' routines, on scipy.special
# Each is the computation scipy.stats (1.17) performs, written out so this module need not import scipy.stats
# and scipy.optimize; tests/test_stats_scipy_free.py holds them to scipy.stats bit for bit.

_RTOL = 4 * np.finfo(float).eps   # scipy.optimize.brentq's default (and smallest allowed) rtol


def _brentq(f, a: float, b: float, xtol: float = 2e-12, rtol: float = _RTOL, maxiter: int = 100) -> float:
    """scipy.optimize.brentq: a root of ``f`` bracketed by [a, b], by scipy's C routine (Zeros/brentq.c).

    The steps and their floating-point operations are those of the C code, so the root is the same
    double; like scipy, a NaN function value or an unbracketed root is a ValueError and no convergence
    within ``maxiter`` steps a RuntimeError.
    """
    def call(x: float) -> float:
        fx = float(f(x))
        if math.isnan(fx):
            raise ValueError(f"The function value at x={x} is NaN; solver cannot continue.")
        return fx

    xpre, xcur = float(a), float(b)
    xblk = fblk = spre = scur = 0.0
    fpre, fcur = call(xpre), call(xcur)
    if fpre * fcur > 0:
        raise ValueError("f(a) and f(b) must have different signs")
    if fpre == 0:
        return xpre
    if fcur == 0:
        return xcur
    for _ in range(maxiter):
        if fpre != 0 and fcur != 0 and math.copysign(1.0, fpre) != math.copysign(1.0, fcur):
            xblk, fblk = xpre, fpre
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):
            xpre, xcur, xblk = xcur, xblk, xcur
            fpre, fcur, fblk = fcur, fblk, fcur
        delta = (xtol + rtol * abs(xcur)) / 2
        sbis = (xblk - xcur) / 2
        if fcur == 0 or abs(sbis) < delta:
            return xcur
        if abs(spre) > delta and abs(fcur) < abs(fpre):
            if xpre == xblk:   # interpolate
                stry = -fcur * (xcur - xpre) / (fcur - fpre)
            else:              # extrapolate
                dpre = (fpre - fcur) / (xpre - xcur)
                dblk = (fblk - fcur) / (xblk - xcur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
            if 2 * abs(stry) < min(abs(spre), 3 * abs(sbis) - delta):   # good short step
                spre, scur = scur, stry
            else:
                spre = scur = sbis
        else:
            spre = scur = sbis
        xpre, fpre = xcur, fcur
        xcur += scur if abs(scur) > delta else (delta if sbis > 0 else -delta)
        fcur = call(xcur)
    raise RuntimeError(f"Failed to converge after {maxiter} iterations, value is {xcur}.")


def _clip01(value) -> float:
    return min(max(float(value), 0.0), 1.0)   # np.clip(value, 0, 1), NaN kept


def _binom_pmf(k: float, n: int, p: float) -> float:
    """scipy.stats.binom.pmf(k, n, p) for integer n ≥ 0: 0 off the support, NaN for p outside [0, 1]."""
    if not 0 <= p <= 1:
        return NAN
    return _clip01(_scu._binom_pmf(k, n, p)) if 0 <= k <= n and k == math.floor(k) else 0.0


def _binom_cdf(k: float, n: int, p: float) -> float:
    """scipy.stats.binom.cdf(k, n, p) for integer n ≥ 0."""
    if not 0 <= p <= 1:
        return NAN
    if k >= n:
        return 1.0
    return _clip01(_scu._binom_cdf(math.floor(k), n, p)) if k >= 0 else 0.0


def _binom_sf(k: float, n: int, p: float) -> float:
    """scipy.stats.binom.sf(k, n, p) for integer n ≥ 0."""
    if not 0 <= p <= 1:
        return NAN
    if k < 0:
        return 1.0
    return _clip01(_scu._binom_sf(math.floor(k), n, p)) if k < n else 0.0


def _binary_search_binom(a, d: float, lo: float, hi: float) -> float:
    """scipy's ``_binary_search_for_binom_tst``: the i in [lo, hi] with a(i) <= d < a(i + 1)."""
    while lo < hi:
        mid = lo + (hi - lo) // 2
        value = a(mid)
        if value < d:
            lo = mid + 1
        elif value > d:
            hi = mid - 1
        else:
            return mid
    return lo if a(lo) <= d else lo - 1


def _binom_test_p(k: int, n: int, p: float) -> float:
    """Two-sided p-value of scipy.stats.binomtest(k, n, p) (R's binom.test): the probability of the
    outcomes no more likely than k, with scipy's relative tolerance 1e-7 on "no more likely"."""
    d = _binom_pmf(k, n, p)
    rerr = 1 + 1e-7
    if k == p * n:
        return 1.0
    if k < p * n:
        ix = _binary_search_binom(lambda x: -_binom_pmf(x, n, p), -d * rerr, math.ceil(p * n), n)
        y = n - ix + int(d * rerr == _binom_pmf(ix, n, p))
        pval = _binom_cdf(k, n, p) + _binom_sf(n - y, n, p)
    else:
        ix = _binary_search_binom(lambda x: _binom_pmf(x, n, p), d * rerr, 0, math.floor(p * n))
        pval = _binom_cdf(ix, n, p) + _binom_sf(k - 1, n, p)
    return min(1.0, pval)


def _clopper_pearson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """scipy.stats.binomtest(k, n).proportion_ci(confidence, method="exact"): the two-sided
    Clopper–Pearson interval (R's binom.test interval), each end a brentq root on [0, 1]."""
    alpha = (1 - confidence) / 2
    low = 0.0 if k == 0 else _brentq(lambda q: _binom_sf(k - 1, n, q) - alpha, 0, 1)
    high = 1.0 if k == n else _brentq(lambda q: _binom_cdf(k, n, q) - alpha, 0, 1)
    return low, high


def _chi2_sf(x: float, df: float) -> float:
    """scipy.stats.chi2.sf(x, df) for df > 0 (1 at and below 0, where ``chdtrc`` alone gives NaN)."""
    return 1.0 if x <= 0 else float(special.chdtrc(df, x))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """scipy.stats.rankdata(x) (method "average"): ranks 1..n, ties sharing their mean rank; all NaN
    when x holds a NaN, as scipy's default nan_policy "propagate"."""
    x = np.asarray(x, dtype=float).ravel()
    if np.isnan(x).any():
        return np.full(len(x), NAN)
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]              # a tie block holds sorted positions starts..ends-1
    ranks = np.empty(len(x))
    ranks[order] = np.repeat((starts + 1 + ends) / 2, ends - starts)
    return ranks


# --------------------------------------------------------------------------- exact rank distributions

def _signed_rank_counts(n: int) -> np.ndarray:
    """Number of sign patterns giving each signed-rank sum 0..n(n+1)/2 (R's dsignrank × 2^n)."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for k in range(1, n + 1):
        shifted = np.zeros_like(counts)
        shifted[k:] = counts[:-k]
        counts = counts + shifted
    return counts


def _rank_sum_counts(m: int, n: int) -> np.ndarray:
    """Number of m-subsets of ranks 1..m+n for each Mann–Whitney U = 0..mn (R's dwilcox × C(m+n, m))."""
    total = m + n
    dp = np.zeros((m + 1, total * (total + 1) // 2 + 1))
    dp[0, 0] = 1.0
    for rank in range(1, total + 1):
        dp[1:, rank:] = dp[1:, rank:] + dp[:-1, :-rank].copy()
    offset = m * (m + 1) // 2
    return dp[m, offset:offset + m * n + 1]


def _exact_two_sided(counts: np.ndarray, stat: float) -> float:
    """R's rule: double the smaller tail; the upper tail is P(S >= stat)."""
    probs = counts / counts.sum()
    centre = (len(counts) - 1) / 2
    k = int(round(stat))
    p = probs[k:].sum() if stat > centre else probs[:k + 1].sum()
    return float(min(1.0, 2 * p))


def _normal_cc_p(z: float, sigma: float) -> float:
    if sigma <= 0:
        return NAN
    z = (z - np.sign(z) * 0.5) / sigma
    return float(2 * min(special.ndtr(z), special.ndtr(-z)))  # norm.cdf(z), norm.sf(z)


def _has_ties(x: np.ndarray) -> bool:
    return len(np.unique(x)) < len(x)


# --------------------------------------------------------------------------- paired

def _clean_pairs(pre, post, level: str) -> tuple:
    """The complete pairs: float arrays stay arrays (`_float_array`), other inputs become Series, as do
    nominal data whatever they are given as (their levels are compared as the Series holds them)."""
    arrays = level != "nominal" and _float_array(pre) and _float_array(post)
    pre_s, post_s = (pre, post) if arrays else (pd.Series(pre).reset_index(drop=True),
                                                pd.Series(post).reset_index(drop=True))
    if len(pre_s) != len(post_s):
        raise ValueError(f"paired data need equal lengths, got {len(pre_s)} and {len(post_s)}")
    keep = ~(np.isnan(pre_s) | np.isnan(post_s)) if arrays else pre_s.notna() & post_s.notna()
    return pre_s[keep], post_s[keep]


def _numeric(x: pd.Series | np.ndarray, level: str) -> np.ndarray:
    values = x if _float_array(x) else pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
    if np.isnan(values).any():
        raise ValueError(f"{level} data must be numeric")
    if level == "binary" and not np.isin(values, (0.0, 1.0)).all():
        raise ValueError("binary data must be coded 0/1 (or True/False)")
    return values


def _float_array(x) -> bool:
    """A numpy float array: already what `_numeric` makes of an input (the analysis stage passes these), so
    missing values are dropped with numpy instead of through Series (the same numbers, a fraction of the cost)."""
    return isinstance(x, np.ndarray) and x.dtype == np.float64 and x.ndim == 1


def paired(pre, post, level: str = "interval", method: str = "auto") -> dict:
    """Compare the same respondents before and after (pairs with a missing value are dropped).

    ``n_pre``, ``n_post`` and ``n_pairs`` are all the number of complete pairs; means are over
    them and ``diff`` is mean(post) − mean(pre).  ``diff_ci`` is the paired t interval for
    interval/ordinal data (a CI for the mean difference, also next to a rank test) and the
    Wald interval of the difference of paired proportions for binary data.
    ``method="auto"``: interval → paired_t; ordinal → wilcoxon_exact when fewer than 50
    pairs and no ties or zero differences, else wilcoxon_normal_cc; binary → mcnemar_exact
    when fewer than 25 discordant pairs, else mcnemar_cc; nominal → stuart_maxwell.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    pre_s, post_s = _clean_pairs(pre, post, level)
    n = len(pre_s)
    if level == "nominal":
        if method not in ("auto", "stuart_maxwell"):
            raise ValueError(f"nominal paired data use stuart_maxwell, not {method!r}")
        return _result(level, n_pre=n, n_post=n, n_pairs=n, **_stuart_maxwell(pre_s, post_s))
    x, y = _numeric(pre_s, level), _numeric(post_s, level)
    d = y - x
    base = dict(n_pre=n, n_post=n, n_pairs=n, mean_pre=float(x.mean()) if n else NAN,
                mean_post=float(y.mean()) if n else NAN, diff=float(d.mean()) if n else NAN)
    if level == "binary":
        b, c = int(np.sum((x == 0) & (y == 1))), int(np.sum((x == 1) & (y == 0)))
        se = math.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n if n else NAN
        z = special.ndtri(0.975)
        base.update(diff_ci_low=base["diff"] - z * se, diff_ci_high=base["diff"] + z * se)
        if method == "auto":
            method = "mcnemar_exact" if b + c < 25 else "mcnemar_cc"
        return _result(level, **base, **_mcnemar(b, c, method))
    sd = float(np.std(d, ddof=1)) if n > 1 else NAN
    low, high = _t_interval(base["diff"], sd / math.sqrt(n) if n else NAN, n - 1)
    base.update(diff_ci_low=low, diff_ci_high=high)
    if method == "auto":
        nonzero = d[d != 0]
        small = len(nonzero) < 50 and len(nonzero) == n and not _has_ties(np.abs(nonzero))
        method = "paired_t" if level == "interval" else ("wilcoxon_exact" if small else "wilcoxon_normal_cc")
    if method == "paired_t":
        t = base["diff"] / (sd / math.sqrt(n)) if n > 1 and sd > 0 else NAN
        dz = base["diff"] / sd if n > 1 and sd > 0 else NAN
        lo, hi = _nct_interval(t, n - 1)
        return _result(level, **base, test="paired_t", statistic=t, df=float(n - 1),
                       p_value=float(2 * special.stdtr(n - 1, -abs(t))) if np.isfinite(t) else NAN,
                       effect_size_name="cohen_dz", effect_size=dz,
                       es_ci_low=lo / math.sqrt(n) if n else NAN, es_ci_high=hi / math.sqrt(n) if n else NAN)
    if method in ("wilcoxon_exact", "wilcoxon_normal_cc"):
        return _result(level, **base, **_wilcoxon(d, exact=method == "wilcoxon_exact"))
    raise ValueError(f"unknown paired method {method!r} for {level} data; use one of {PAIRED_METHODS}")


def _wilcoxon(d: np.ndarray, exact: bool) -> dict:
    """``wilcox.test(post, pre, paired=TRUE)``: zeros dropped; exact only without ties or zeros."""
    zeros = bool(np.any(d == 0))
    d = d[d != 0]
    n = len(d)
    if n == 0:
        return dict(test="wilcoxon_normal_cc", statistic=NAN, p_value=NAN, effect_size_name="rank_biserial",
                    effect_size=NAN, es_ci_low=NAN, es_ci_high=NAN)
    ranks = _average_ranks(np.abs(d))
    v = float(ranks[d > 0].sum())
    ties = _has_ties(np.abs(d))
    if exact and not ties and not zeros:
        test, p = "wilcoxon_exact", _exact_two_sided(_signed_rank_counts(n), v)
    else:
        _, tie_counts = np.unique(ranks, return_counts=True)
        sigma = math.sqrt(n * (n + 1) * (2 * n + 1) / 24 - np.sum(tie_counts**3 - tie_counts) / 48)
        test, p = "wilcoxon_normal_cc", _normal_cc_p(v - n * (n + 1) / 4, sigma)
    total = n * (n + 1) / 2
    r = (v - (total - v)) / total
    se = math.sqrt((2 * n**3 + 3 * n**2 + n) / 6) / total
    lo, hi = _fisher_z_ci(r, se)
    return dict(test=test, statistic=v, p_value=p, effect_size_name="rank_biserial", effect_size=r,
                es_ci_low=lo, es_ci_high=hi)


def _fisher_z_ci(r: float, se: float) -> tuple[float, float]:
    z = special.ndtri(0.975)
    with np.errstate(divide="ignore"):
        centre = np.arctanh(np.clip(r, -1, 1))
    return float(np.tanh(centre - z * se)), float(np.tanh(centre + z * se))


def _mcnemar(b: int, c: int, method: str) -> dict:
    """McNemar on the discordant pairs: b = 0→1 (pre 0, post 1), c = 1→0.

    ``mcnemar_exact`` is ``binom.test(b, b + c)`` (statistic b); ``mcnemar_cc`` is
    ``mcnemar.test`` with its continuity correction (none when b == c, as in R).
    The effect size is the conditional odds ratio b / c with the exact (Clopper–Pearson)
    interval of b / (b + c) transformed to the odds scale, for either test.
    """
    m = b + c
    if method == "mcnemar_exact":
        stat, df = float(b), None
        p = _binom_test_p(b, m, 0.5) if m else NAN
    elif method == "mcnemar_cc":
        stat = ((abs(b - c) - (1 if b != c else 0)) ** 2 / m) if m else NAN
        df, p = 1.0, _chi2_sf(stat, 1) if m else NAN
    else:
        raise ValueError(f"unknown method {method!r} for paired binary data; use mcnemar_exact or mcnemar_cc")
    if m:
        ci_low, ci_high = _clopper_pearson(b, m, 0.95)
        odds = lambda q: q / (1 - q) if q < 1 else math.inf  # noqa: E731
        es, lo, hi = (b / c if c else math.inf), odds(ci_low), odds(ci_high)
    else:
        es = lo = hi = NAN
    return dict(test=method, statistic=stat, df=df, p_value=p, effect_size_name="odds_ratio",
                effect_size=es, es_ci_low=lo, es_ci_high=hi)


def _stuart_maxwell(pre: pd.Series, post: pd.Series) -> dict:
    """Marginal homogeneity of a k×k paired table (Stuart 1955, Maxwell 1970), chi-square on k−1 df.

    Categories with no discordant pairs carry no information (their row and column of the
    covariance are zero) and are left out, reducing k.
    """
    levels = sorted(set(pre) | set(post), key=lambda v: (str(type(v)), v))
    table = pd.crosstab(pd.Categorical(pre, levels), pd.Categorical(post, levels), dropna=False)
    t = table.reindex(index=levels, columns=levels, fill_value=0).to_numpy(dtype=float)
    off = t - np.diag(np.diag(t))
    active = (off.sum(axis=0) + off.sum(axis=1)) > 0
    t = t[np.ix_(active, active)]
    k = len(t)
    base = dict(test="stuart_maxwell", statistic=NAN, df=float(max(k - 1, 0)), p_value=NAN)
    if k < 2:
        return base
    d = (t.sum(axis=1) - t.sum(axis=0))[:-1]
    s = -(t + t.T)
    np.fill_diagonal(s, t.sum(axis=1) + t.sum(axis=0) - 2 * np.diag(t))
    stat = float(d @ np.linalg.solve(s[:-1, :-1], d))
    return dict(base, statistic=stat, p_value=_chi2_sf(stat, k - 1))


# --------------------------------------------------------------------------- independent

def independent(a, b, level: str = "interval", method: str = "auto") -> dict:
    """Compare two independent samples; ``a`` is "pre", ``b`` is "post", ``diff`` = mean(b) − mean(a).

    Missing values are dropped from each sample.  ``method="auto"``: interval → welch_t;
    ordinal → mann_whitney_exact when both samples have fewer than 50 values and there
    are no ties, else mann_whitney_normal_cc; binary → fisher_exact when any expected cell
    of the 2×2 table is under 5, else chisq; nominal → chisq.  ``diff_ci`` is Welch's
    interval (interval/ordinal) or the Wald interval of the difference in proportions
    (binary, as ``prop.test(correct=FALSE)``).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if _float_array(a) and _float_array(b) and level in ("interval", "ordinal"):  # (the others use Series)
        a_s, b_s = a[~np.isnan(a)], b[~np.isnan(b)]
    else:
        a_s, b_s = pd.Series(a).dropna(), pd.Series(b).dropna()
    n1, n2 = len(a_s), len(b_s)
    if level == "nominal":
        if method not in ("auto", "chisq"):
            raise ValueError(f"nominal independent data use chisq, not {method!r}")
        return _result(level, n_pre=n1, n_post=n2, **_chisq(a_s, b_s, nominal=True))
    x, y = _numeric(a_s, level), _numeric(b_s, level)
    m1, m2 = (float(x.mean()) if n1 else NAN), (float(y.mean()) if n2 else NAN)
    base = dict(n_pre=n1, n_post=n2, mean_pre=m1, mean_post=m2, diff=m2 - m1)
    if level == "binary":
        se = math.sqrt(m1 * (1 - m1) / n1 + m2 * (1 - m2) / n2) if n1 and n2 else NAN
        z = special.ndtri(0.975)
        base.update(diff_ci_low=base["diff"] - z * se, diff_ci_high=base["diff"] + z * se)
        if method == "auto":
            table = _two_by_two(x, y)
            expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / max(table.sum(), 1)
            method = "fisher_exact" if (expected < 5).any() else "chisq"
        if method == "fisher_exact":
            return _result(level, **base, **_fisher(_two_by_two(x, y)))
        if method == "chisq":
            return _result(level, **base, **_chisq(a_s.astype(float), b_s.astype(float), nominal=False))
        raise ValueError(f"unknown method {method!r} for independent binary data; use chisq or fisher_exact")
    v1, v2 = (np.var(x, ddof=1) if n1 > 1 else NAN), (np.var(y, ddof=1) if n2 > 1 else NAN)
    se = math.sqrt(v1 / n1 + v2 / n2) if n1 > 1 and n2 > 1 else NAN
    welch_df = se**4 / ((v1 / n1) ** 2 / (n1 - 1) + (v2 / n2) ** 2 / (n2 - 1)) if se > 0 else NAN
    low, high = _t_interval(base["diff"], se, welch_df)
    base.update(diff_ci_low=low, diff_ci_high=high)
    if method == "auto":
        small = n1 < 50 and n2 < 50 and not _has_ties(np.concatenate([x, y]))
        method = "welch_t" if level == "interval" else ("mann_whitney_exact" if small else "mann_whitney_normal_cc")
    if method == "welch_t":
        t = base["diff"] / se if se > 0 else NAN
        return _result(level, **base, test="welch_t", statistic=t, df=welch_df,
                       p_value=float(2 * special.stdtr(welch_df, -abs(t))) if np.isfinite(t) else NAN,
                       **_hedges_g(x, y))
    if method in ("mann_whitney_exact", "mann_whitney_normal_cc"):
        return _result(level, **base, **_mann_whitney(x, y, exact=method == "mann_whitney_exact"))
    raise ValueError(f"unknown independent method {method!r} for {level} data; use one of {INDEPENDENT_METHODS}")


def _hedges_g(x: np.ndarray, y: np.ndarray) -> dict:
    """Hedges' g = J · (mean_b − mean_a) / pooled SD, J = Γ(ν/2) / (√(ν/2) Γ((ν−1)/2)).

    CI: noncentral t inversion for d (ν = n_a + n_b − 2), multiplied by J — the method of
    R's effectsize::hedges_g and MBESS::ci.smd.  Welch's test ran, but g uses the pooled SD.
    """
    n1, n2 = len(x), len(y)
    nu = n1 + n2 - 2
    if n1 < 2 or n2 < 2:
        return dict(effect_size_name="hedges_g", effect_size=NAN, es_ci_low=NAN, es_ci_high=NAN)
    sp = math.sqrt(((n1 - 1) * np.var(x, ddof=1) + (n2 - 1) * np.var(y, ddof=1)) / nu)
    d = (y.mean() - x.mean()) / sp if sp > 0 else NAN
    j = math.exp(math.lgamma(nu / 2) - math.log(math.sqrt(nu / 2)) - math.lgamma((nu - 1) / 2))
    scale = math.sqrt(1 / n1 + 1 / n2)
    lo, hi = _nct_interval(d / scale, nu)
    return dict(effect_size_name="hedges_g", effect_size=float(j * d), es_ci_low=j * lo * scale,
                es_ci_high=j * hi * scale)


def _mann_whitney(x: np.ndarray, y: np.ndarray, exact: bool) -> dict:
    """``wilcox.test(b, a)``: W = U of ``b`` = #(b > a) + ½ #(b = a); exact only without ties.

    Rank-biserial r = 2W / (n_a n_b) − 1 (positive when b tends to be larger), CI by
    Fisher's z with SE √((n_a + n_b + 1) / (3 n_a n_b)), as R's effectsize::rank_biserial.
    """
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return dict(test="mann_whitney_normal_cc", statistic=NAN, p_value=NAN,
                    effect_size_name="rank_biserial", effect_size=NAN, es_ci_low=NAN, es_ci_high=NAN)
    ranks = _average_ranks(np.concatenate([y, x]))
    w = float(ranks[:n2].sum() - n2 * (n2 + 1) / 2)
    if exact and not _has_ties(ranks):
        test, p = "mann_whitney_exact", _exact_two_sided(_rank_sum_counts(n2, n1), w)
    else:
        _, t = np.unique(ranks, return_counts=True)
        n = n1 + n2
        sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - np.sum(t**3 - t) / (n * (n - 1))))
        test, p = "mann_whitney_normal_cc", _normal_cc_p(w - n1 * n2 / 2, sigma)
    r = 2 * w / (n1 * n2) - 1
    lo, hi = _fisher_z_ci(r, math.sqrt((n1 + n2 + 1) / (3 * n1 * n2)))
    return dict(test=test, statistic=w, p_value=p, effect_size_name="rank_biserial", effect_size=r,
                es_ci_low=lo, es_ci_high=hi)


def _two_by_two(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rows post (b), pre (a); columns 1, 0 — so odds ratios are odds(post) / odds(pre)."""
    return np.array([[np.sum(y == 1), np.sum(y == 0)], [np.sum(x == 1), np.sum(x == 0)]], dtype=float)


def _chisq(a: pd.Series, b: pd.Series, nominal: bool) -> dict:
    """``chisq.test`` on the 2×k table of group × answer; Yates' correction for 2×2 as R's default.

    Effect size: binary → sample odds ratio odds(b)/odds(a) with Woolf's log interval
    (0.5 added to every cell when one is 0); nominal → Cramér's V (no interval).
    """
    if nominal:
        levels = sorted(set(a) | set(b), key=lambda v: (str(type(v)), v))
        a_values, b_values = a.to_numpy(), b.to_numpy()   # (comparing arrays, not Series, per level)
        table = np.array([[np.sum(b_values == lv) for lv in levels], [np.sum(a_values == lv) for lv in levels]],
                         dtype=float)
    else:
        table = _two_by_two(a.to_numpy(dtype=float), b.to_numpy(dtype=float))
    n = table.sum()
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n if n else table * NAN
    df = float((table.shape[0] - 1) * (table.shape[1] - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = float(np.sum((table - expected) ** 2 / expected))
        if table.shape == (2, 2):
            yates = min(0.5, float(np.min(np.abs(table - expected))))
            stat = float(np.sum((np.abs(table - expected) - yates) ** 2 / expected))
        else:
            stat = raw
    p = _chi2_sf(stat, df) if np.isfinite(stat) and df > 0 else NAN
    out = dict(test="chisq", statistic=stat, df=df, p_value=p)
    if nominal:
        k = min(table.shape) - 1
        out.update(effect_size_name="cramers_v", effect_size=math.sqrt(raw / (n * k)) if k and n else NAN)
        return out
    cells = table + 0.5 if (table == 0).any() else table
    log_or = math.log(cells[0, 0] * cells[1, 1] / (cells[0, 1] * cells[1, 0]))
    se = math.sqrt(np.sum(1 / cells))
    z = special.ndtri(0.975)
    out.update(effect_size_name="odds_ratio", effect_size=math.exp(log_or),
               es_ci_low=math.exp(log_or - z * se), es_ci_high=math.exp(log_or + z * se))
    return out


def _fisher(table: np.ndarray) -> dict:
    """``fisher.test`` on the 2×2 table; the effect size is R's conditional MLE odds ratio with
    its exact conditional interval (scipy's ``odds_ratio(kind="conditional")`` follows R)."""
    from scipy.stats import fisher_exact  # (imported here: scipy.stats costs ~1 s, and few runs need this test)
    from scipy.stats.contingency import odds_ratio

    p = float(fisher_exact(table).pvalue)
    try:
        res = odds_ratio(table.astype(int), kind="conditional")
        ci = res.confidence_interval(0.95)
        es, lo, hi = float(res.statistic), float(ci.low), float(ci.high)
    except ValueError:
        es = lo = hi = NAN
    return dict(test="fisher_exact", statistic=None, df=None, p_value=p, effect_size_name="odds_ratio",
                effect_size=es, es_ci_low=lo, es_ci_high=hi)


# --------------------------------------------------------------------------- multiple testing

def adjust(p_values, method: str) -> np.ndarray:
    """Adjusted p-values, ``method`` "holm" or "fdr_bh" (R's p.adjust "holm" / "BH").

    NaN p-values stay NaN and do not count as tests (as R's p.adjust with NA). Written out in numpy
    (R's formulas) rather than statsmodels' multipletests, whose default is Holm–Šidák and which costs a
    garbage collection per call; the tests hold both to the same numbers.
    """
    if method not in ("holm", "fdr_bh"):
        raise ValueError(f"method must be 'holm' or 'fdr_bh', got {method!r}")
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, NAN)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if not m:
        return out
    values = p[ok]
    if method == "holm":
        order = np.argsort(values, kind="stable")
        adjusted = np.maximum.accumulate((m - np.arange(m)) * values[order])
    else:
        order = np.argsort(values, kind="stable")[::-1]
        adjusted = np.minimum.accumulate(m / np.arange(m, 0, -1) * values[order])
    result = np.empty(m)
    result[order] = np.minimum(adjusted, 1.0)
    out[ok] = result
    return out


# --------------------------------------------------------------------------- reliability

def cronbach_alpha(items_df: pd.DataFrame, conf: float = 0.95) -> dict:
    """Cronbach's alpha after listwise deletion, with Feldt's (1965) F-distribution interval.

    The interval is ``1 − (1 − α) · F_q(n − 1, (n − 1)(k − 1))``, exactly R's
    ``psych::alpha.ci`` (the "Feldt" bounds ``psych::alpha`` prints); ``ltm::cronbach.alpha``
    bootstraps instead and is not matched.
    """
    items = _numeric_columns(items_df).dropna()
    n, k = items.shape
    if k < 2 or n < 2:
        return {"alpha": NAN, "ci_low": NAN, "ci_high": NAN, "n": int(n), "k": int(k)}
    item_var = items.var(ddof=1).sum()
    total_var = items.sum(axis=1).var(ddof=1)
    alpha = float(k / (k - 1) * (1 - item_var / total_var)) if total_var > 0 else NAN
    df1, df2 = n - 1, (n - 1) * (k - 1)
    low = 1 - (1 - alpha) * special.fdtri(df1, df2, 0.5 + conf / 2)   # scipy.stats.f.ppf(q, df1, df2)
    high = 1 - (1 - alpha) * special.fdtri(df1, df2, 0.5 - conf / 2)
    return {"alpha": alpha, "ci_low": float(low), "ci_high": float(high), "n": int(n), "k": int(k)}


def _numeric_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column as numbers (text that is not a number becomes missing); a frame of numbers as it is."""
    if all(pd.api.types.is_numeric_dtype(dtype) for dtype in frame.dtypes):
        return frame
    return frame.apply(pd.to_numeric, errors="coerce")


def item_rest_correlations(items_df: pd.DataFrame) -> pd.Series:
    """Correlation of each item with the sum of the other items, listwise (psych's ``r.drop``)."""
    items = items_df.apply(pd.to_numeric, errors="coerce").dropna()
    total = items.sum(axis=1)
    return pd.Series({c: float(np.corrcoef(items[c], total - items[c])[0, 1]) for c in items.columns},
                     name="item_rest_r")


def reliable_change(pre, post, sd_baseline: float, reliability: float, higher_is_better: bool = True) -> dict:
    """Jacobson–Truax reliable change index: (post − pre) / (√2 · SD · √(1 − r)).

    Returns the RCI per person (NaN where a value is missing) and the shares of complete
    pairs improved / unchanged / worse at |RCI| > 1.96; "improved" follows ``higher_is_better``.
    """
    if not 0 <= reliability < 1 or sd_baseline <= 0:
        raise ValueError("reliability must be in [0, 1) and sd_baseline positive")
    x = pd.to_numeric(pd.Series(pre).reset_index(drop=True), errors="coerce")
    y = pd.to_numeric(pd.Series(post).reset_index(drop=True), errors="coerce")
    se_diff = math.sqrt(2) * sd_baseline * math.sqrt(1 - reliability)
    rci = ((y - x) / se_diff).to_numpy(dtype=float)
    valid = rci[~np.isnan(rci)]
    n = len(valid)
    up, down = np.sum(valid > 1.96), np.sum(valid < -1.96)
    better, worse = (up, down) if higher_is_better else (down, up)
    share = (lambda c: float(c / n)) if n else (lambda c: NAN)
    return {"rci": rci, "n": n, "se_diff": se_diff, "improved": share(better),
            "unchanged": share(n - up - down), "worse": share(worse)}


# --------------------------------------------------------------------------- survey estimates

_SURVEY_KEYS = ("estimate", "se", "ci_low", "ci_high", "n", "deff", "df")


def survey_mean(df: pd.DataFrame, var: str, weight: str, strata: str | None = None, psu: str | None = None,
                fpc: str | None = None) -> dict:
    """Design-based mean of ``var`` over its non-missing values (R: ``svymean`` on ``subset()``).

    Columns name the design; the design is built on all rows.  Keys: estimate, se, ci_low,
    ci_high (estimate ± t(design df) · se), n, deff, and df (the design df used).
    """
    design = survey.make_design(df, weight, strata, psu, fpc)
    res = survey.mean(design, var)
    return {k: res[k] for k in _SURVEY_KEYS}


def survey_proportion(df: pd.DataFrame, var: str, level, weight: str, strata: str | None = None,
                      psu: str | None = None, fpc: str | None = None) -> dict:
    """Design-based share of ``var == level`` with R's ``svyciprop(method="logit")`` interval."""
    design = survey.make_design(df, weight, strata, psu, fpc)
    res = survey.proportion(design, var, level)
    return {k: res[k] for k in _SURVEY_KEYS}
