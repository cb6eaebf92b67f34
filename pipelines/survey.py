"""Design-based estimation that reproduces R's ``survey`` package (one-stage designs).

Why not call ``svy`` for the estimates: the pipeline needs R-equal numbers for
domains (missing answers, groups) and for raked designs, and the rules R uses
there (subset keeps every PSU, raking residuals inside ``svyrecvar``, degrees of
freedom of the subset) are short enough to write down exactly in numpy.  Each
rule below names the R function it mirrors (survey 4.1.1).

* Variance: Taylor linearisation as ``svyrecvar``/``onestrat`` — PSU totals of the
  influence values within strata, centred at the stratum mean, scaled by
  ``f_h * n_h / (n_h - 1)`` with ``f_h = (N_h - n_h) / N_h``.  PSUs are nested
  in strata (R's ``nest=TRUE``); ``psu=None`` makes every row its own PSU.
* Domains: like ``subset(design, ...)`` — the design keeps all rows; rows outside
  the domain get influence 0 but their PSUs still count.
* Raking: iterative proportional fitting with ``rake()``'s stopping rule; the
  variance first removes the raking margins' means as ``svyrecvar`` does for a
  ``"raking"`` postStrata object (10 passes of ``x - w * ave(x / w, margin)``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd

from pipelines.lazy import scipy_special as special

LONELY_PSU_OPTIONS = ("fail", "certainty", "remove", "adjust")


@dataclass(frozen=True)
class _Layout:
    """Integer codes of the design, computed once per design."""

    weights: np.ndarray
    psu: np.ndarray  # PSU code of each row (unique across strata)
    stratum: np.ndarray  # stratum code of each row
    psu_stratum: np.ndarray  # stratum code of each PSU
    n_psu_in_stratum: np.ndarray  # n_h
    fpc_factor: np.ndarray  # f per PSU: (N_h - n_h) / N_h, 1 without fpc
    stratum_labels: np.ndarray


@dataclass(frozen=True, eq=False)
class Design:
    """A one-stage survey design: weights, strata, PSUs and fpc travel together.

    ``fpc`` holds either population sizes (all values >= 1: PSUs in the
    stratum's population) or sampling fractions (all values <= 1), decided as
    R's ``as.fpc`` decides.  ``rake_margins`` names the columns the weights were
    raked on; ``rake_weights`` holds, per margin, the weights right after that
    margin's step in the last sweep (R stores them on each post-stratum).  When
    it is None (e.g. a design rebuilt from ``design.json``) the final weights are
    used for every margin, which equals R once raking has converged.
    """

    data: pd.DataFrame
    weight: str
    strata: str | None = None
    psu: str | None = None
    fpc: str | None = None
    rake_margins: tuple[str, ...] = ()
    rake_weights: tuple[np.ndarray, ...] | None = field(default=None, repr=False)
    lonely_psu: str = "fail"

    def __post_init__(self) -> None:
        if self.lonely_psu not in LONELY_PSU_OPTIONS:
            raise ValueError(f"lonely_psu must be one of {LONELY_PSU_OPTIONS}, got {self.lonely_psu!r}")
        for col in [self.weight, self.strata, self.psu, self.fpc, *self.rake_margins]:
            if col is not None and col not in self.data.columns:
                raise ValueError(f"design column {col!r} is not in the data")
        for col in [self.weight, self.strata, self.psu, self.fpc, *self.rake_margins]:
            if col is not None and self.data[col].isna().any():
                raise ValueError(f"design column {col!r} has missing values (R's svydesign refuses them too)")
        if self.rake_weights is not None and len(self.rake_weights) != len(self.rake_margins):
            raise ValueError("rake_weights needs one weight vector per raking margin")

    @cached_property
    def layout(self) -> _Layout:
        n = len(self.data)
        w = self.data[self.weight].to_numpy(dtype=float)
        if (w < 0).any():
            raise ValueError(f"weights in {self.weight!r} must not be negative")
        if self.strata is None:
            stratum, labels = np.zeros(n, dtype=np.int64), np.array(["1"], dtype=object)
        else:
            stratum, labels = pd.factorize(self.data[self.strata], sort=True)
            labels = np.asarray(labels, dtype=object)
        if self.psu is None:
            psu_raw = np.arange(n)
        else:
            psu_raw = pd.factorize(self.data[self.psu])[0]
        # nest PSUs in strata: the same PSU id in two strata is two PSUs
        keys = stratum.astype(np.int64) * (n + 1) + psu_raw
        _, first_row, psu_code = np.unique(keys, return_index=True, return_inverse=True)
        psu_stratum = stratum[first_row]
        n_h = np.bincount(psu_stratum, minlength=len(labels)).astype(float)
        f = np.ones(len(first_row))
        if self.fpc is not None:
            fpc_row = self.data[self.fpc].to_numpy(dtype=float)
            is_popsize = bool((fpc_row > 1).any())
            if is_popsize != bool((fpc_row >= 1).all()):
                raise ValueError(f"fpc {self.fpc!r} must be all population sizes (>= 1) or all fractions (<= 1)")
            fpc_psu = fpc_row[first_row]
            popsize = fpc_psu if is_popsize else n_h[psu_stratum] / fpc_psu
            if (popsize < n_h[psu_stratum]).any():
                raise ValueError(f"fpc {self.fpc!r} implies more than 100% sampling in some strata")
            f = np.where(np.isinf(popsize), 1.0, (popsize - n_h[psu_stratum]) / popsize)
        return _Layout(w, psu_code, stratum, psu_stratum, n_h, f, labels)

    @property
    def weights(self) -> np.ndarray:
        return self.layout.weights

    def degf(self, mask: np.ndarray | None = None) -> int:
        """R's ``degf()`` of the (subset) design: PSUs minus strata among rows with weight."""
        lay = self.layout
        inset = lay.weights != 0
        if mask is not None:
            inset &= np.asarray(mask, dtype=bool)
        return int(len(np.unique(lay.psu[inset])) - len(np.unique(lay.stratum[inset])))

    @cached_property
    def _rake_codes(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        codes = [pd.factorize(self.data[c])[0] for c in self.rake_margins]
        return codes, [np.bincount(c).astype(float) for c in codes]

    def residualise_raking(self, z: np.ndarray) -> np.ndarray:
        """Remove the raking margins' weighted means, as ``svyrecvar`` does for a raked design."""
        if not self.rake_margins:
            return z
        codes, counts = self._rake_codes
        psws = self.rake_weights or tuple(self.weights for _ in codes)
        z = np.array(z, dtype=float)
        for _ in range(10):
            for code, cnt, psw in zip(codes, counts, psws):
                ratio = z / psw
                z = z - psw * (np.bincount(code, weights=ratio, minlength=len(cnt)) / cnt)[code]
        return z

    def variance(self, z: np.ndarray) -> float:
        """Variance of a total whose influence values are ``z`` (one per row), like ``svyrecvar``."""
        lay = self.layout
        z = self.residualise_raking(np.asarray(z, dtype=float))
        totals = np.bincount(lay.psu, weights=z, minlength=len(lay.psu_stratum))
        n_h = lay.n_psu_in_stratum
        mean_h = np.bincount(lay.psu_stratum, weights=totals, minlength=len(n_h)) / np.maximum(n_h, 1)
        centred = totals - mean_h[lay.psu_stratum]
        lonely = n_h == 1
        if lonely.any():
            if self.lonely_psu == "fail":
                names = ", ".join(map(str, lay.stratum_labels[lonely][:5]))
                raise ValueError(f"stratum ({names}) has only one PSU; pass lonely_psu='certainty', "
                                 "'remove' or 'adjust' (as R's options(survey.lonely.psu=...))")
            if self.lonely_psu == "adjust":
                # R leaves a lonely PSU uncentred: influence values sum to zero, so
                # this is centring at the grand mean.
                single = lonely[lay.psu_stratum]
                centred[single] = totals[single]
        scale = lay.fpc_factor * np.where(n_h > 1, n_h / np.maximum(n_h - 1, 1), 1.0)[lay.psu_stratum]
        # R skips a stratum whose every PSU was taken with certainty (f < 1e-7)
        all_certain = np.bincount(lay.psu_stratum, weights=(lay.fpc_factor >= 1e-7), minlength=len(n_h)) == 0
        scale = np.where(all_certain[lay.psu_stratum], 0.0, scale)
        return float(np.sum(scale * centred**2))


def make_design(df: pd.DataFrame, weight: str, strata: str | None = None, psu: str | None = None,
                fpc: str | None = None, lonely_psu: str = "fail") -> Design:
    """Build a design on every row of ``df`` (missing answers are domains later, not dropped here)."""
    return Design(df, weight, strata, psu, fpc, lonely_psu=lonely_psu)


# --------------------------------------------------------------------------- raking

@dataclass(frozen=True, eq=False)
class RakeResult:
    """Raked weights and how the iteration ended.

    ``iterations`` counts full sweeps over all margins; ``max_margin_error`` is the
    largest absolute gap between a weighted margin total and its target.
    """

    weights: pd.Series
    iterations: int
    converged: bool
    max_margin_error: float
    margins: tuple[str, ...]
    margin_weights: tuple[np.ndarray, ...] = field(repr=False)


def _target_vector(col: pd.Series, targets: dict, codes_levels) -> np.ndarray:
    codes, levels = codes_levels
    by_str = {str(k): v for k, v in targets.items()}
    out = np.empty(len(levels))
    for i, level in enumerate(levels):
        value = targets.get(level, by_str.get(str(level)))
        if value is None:
            raise ValueError(f"level {level!r} of {col.name!r} is in the sample but not in the population margins")
        out[i] = float(value)
    present = {str(x) for x in levels}
    absent = [k for k, v in targets.items() if str(k) not in present and float(v) > 0]
    if absent:
        raise ValueError(f"population levels {absent!r} of {col.name!r} have no respondents "
                         "(R's postStratify refuses this without partial=TRUE)")
    return out


def rake(df: pd.DataFrame, weight_col: str, margins: dict[str, dict], max_iter: int = 50,
         tol: float = 1e-7, bounds: tuple[float | None, float | None] | None = None) -> RakeResult:
    """Iterative proportional fitting to population margins, equal to R's ``survey::rake()``.

    Each sweep post-stratifies on every margin in turn.  The stopping rule is R's:
    stop when the weighted cross-table of all margin variables moves by less than
    ``tol`` between sweeps, where ``tol < 1`` is relative to the total starting
    weight and ``tol >= 1`` is absolute.  ``max_iter=10, tol=1`` are R's defaults;
    the tighter defaults here make the weights converge fully.  ``bounds=(lo, hi)``
    clips the adjustment factor new/old weight after each sweep (not in R's
    ``rake()``; with bounds the margins may be met only approximately — see
    ``max_margin_error``).  Why not ``svy``'s ``Sample.weighting.rake``: it stops on a
    relative margin misfit (not R's table change), so its weights differ from R's.
    """
    if not margins:
        raise ValueError("rake needs at least one margin")
    w0 = df[weight_col].to_numpy(dtype=float)
    cols = tuple(margins)
    for c in cols:
        if c not in df.columns:
            raise ValueError(f"margin column {c!r} is not in the data")
        if df[c].isna().any():
            raise ValueError(f"margin column {c!r} has missing values; raking needs complete margins")
    factorized = [pd.factorize(df[c]) for c in cols]
    codes = [f[0] for f in factorized]
    targets = [_target_vector(df[c], margins[c], f) for c, f in zip(cols, factorized)]
    cell = pd.DataFrame({i: c for i, c in enumerate(codes)}).groupby(list(range(len(codes)))).ngroup().to_numpy()
    eps = tol * w0.sum() if tol < 1 else tol
    lo, hi = bounds if bounds is not None else (None, None)

    w = w0.copy()
    old_table = np.bincount(cell, weights=w)
    converged, iteration, step_weights = False, 0, []
    while iteration < max_iter:
        step_weights = []
        for code, target in zip(codes, targets):
            sample_total = np.bincount(code, weights=w, minlength=len(target))
            w = w * (target / sample_total)[code]
            step_weights.append(w.copy())
        if lo is not None or hi is not None:
            w = np.clip(w, None if lo is None else lo * w0, None if hi is None else hi * w0)
            step_weights[-1] = w.copy()
        table = np.bincount(cell, weights=w)
        iteration += 1
        if np.max(np.abs(old_table - table)) < eps:
            converged = True
            break
        old_table = table
    error = max(float(np.max(np.abs(np.bincount(code, weights=w, minlength=len(t)) - t)))
                for code, t in zip(codes, targets))
    return RakeResult(pd.Series(w, index=df.index, name=weight_col), iteration, converged, error, cols,
                      tuple(step_weights))


def rake_design(design: Design, margins: dict[str, dict], new_weight: str | None = None,
                **rake_options) -> tuple[Design, RakeResult]:
    """Rake a design's weights; the new design carries the margins for R-equal SEs."""
    result = rake(design.data, design.weight, margins, **rake_options)
    name = new_weight or f"{design.weight}_raked"
    data = design.data.assign(**{name: result.weights.to_numpy()})
    return replace(design, data=data, weight=name, rake_margins=result.margins,
                   rake_weights=result.margin_weights), result


# --------------------------------------------------------------------------- estimators

def _domain(design: Design, values: pd.Series, domain_mask) -> np.ndarray:
    mask = values.notna().to_numpy()
    if domain_mask is not None:
        mask &= np.asarray(domain_mask, dtype=bool)
    return mask


def _domain_parts(design: Design, var: str, domain_mask):
    """The variable, its domain (non-missing and in `domain_mask`), the domain's n and its design df."""
    values = design.data[var]
    mask = _domain(design, values, domain_mask)
    return values, mask, int(mask.sum()), design.degf(mask)


def _empty(n: int, df: int) -> dict:
    nan = float("nan")
    return {"estimate": nan, "se": nan, "ci_low": nan, "ci_high": nan, "n": n, "deff": nan, "df": df}


def _t_quantile(df: int, level: float) -> float:
    """scipy.stats.t.ppf(0.5 + level / 2, df): ``special.stdtrit`` is what t.ppf evaluates (no scipy.stats import)."""
    return float(special.stdtrit(df, 0.5 + level / 2)) if df > 0 else float("nan")


def _mean_parts(design: Design, y: np.ndarray, mask: np.ndarray):
    """Estimate, variance and SRS-without-replacement variance of a domain mean (R's svymean)."""
    w = np.where(mask, design.weights, 0.0)
    psum = w.sum()
    yy = np.where(mask, y, 0.0)
    est = float(np.sum(w * yy) / psum)
    resid = np.where(mask, yy - est, 0.0)
    var = design.variance(w * resid / psum)
    n = int(np.count_nonzero(w))
    # deff=TRUE: svyvar (weighted variance with n/(n-1)) times (N - n) / (N n), N = sum of weights
    s2 = np.sum(w * resid**2) / psum * n / (n - 1) if n > 1 else float("nan")
    vsrs = s2 * (psum - n) / (psum * n) if psum >= n else float("nan")
    return est, var, vsrs


def mean(design: Design, var: str, domain_mask=None, level: float = 0.95) -> dict:
    """Domain mean over the non-missing values of ``var`` (R: ``svymean`` on ``subset()``).

    Returns estimate, se, t-interval ``estimate ± qt(., df) · se`` with the subset's
    design df (as ``svyby``/``confint(df=degf(subset))``), n (unweighted count in
    the domain), deff (vs SRS without replacement, R's ``deff=TRUE``) and df.
    """
    values, mask, n, df = _domain_parts(design, var, domain_mask)
    if n == 0 or design.weights[mask].sum() == 0:
        return _empty(n, df)
    est, v, vsrs = _mean_parts(design, pd.to_numeric(values).to_numpy(dtype=float), mask)
    se = float(np.sqrt(v))
    q = _t_quantile(df, level)
    return {"estimate": est, "se": se, "ci_low": est - q * se, "ci_high": est + q * se, "n": n,
            "deff": float(v / vsrs) if vsrs > 0 else float("nan"), "df": df}


def proportion(design: Design, var: str, level, domain_mask=None, conf_level: float = 0.95) -> dict:
    """Share of ``var == level`` among its non-missing values, with R's logit interval.

    ``svyciprop(method="logit")`` fits an intercept-only quasibinomial ``svyglm``;
    its sandwich SE on the logit scale is the delta-method SE ``se(p)/(p(1-p))`` and
    ``confint(ddf=degf(design))`` uses ``qt``.  ``se`` is the SE of the proportion
    itself (what ``SE(svyciprop(...))`` prints).  When p is 0 or 1 the logit is
    infinite and the interval collapses to the point.
    """
    values, mask, n, df = _domain_parts(design, var, domain_mask)
    if n == 0 or design.weights[mask].sum() == 0:
        return _empty(n, df)
    hit = _matches(values, level).astype(float)
    p, v, vsrs = _mean_parts(design, hit, mask)
    se = float(np.sqrt(v))
    if 0.0 < p < 1.0:
        q = _t_quantile(df, conf_level)
        logit, se_logit = np.log(p / (1 - p)), se / (p * (1 - p))
        low, high = (1 / (1 + np.exp(-(logit + s * q * se_logit))) for s in (-1, 1))
    else:
        low = high = p
    return {"estimate": p, "se": se, "ci_low": float(low), "ci_high": float(high), "n": n,
            "deff": float(v / vsrs) if vsrs > 0 else float("nan"), "df": df}


def _matches(values: pd.Series, level) -> np.ndarray:
    """values == level, also when one side is text ('1') and the other a number (1)."""
    hit = (values == level).to_numpy(dtype=bool)
    if not hit.any():
        hit = (values.astype(str) == str(level)).to_numpy(dtype=bool)
        if not hit.any():
            try:
                hit = (pd.to_numeric(values, errors="coerce") == float(level)).to_numpy(dtype=bool)
            except (TypeError, ValueError):
                pass
    return hit & values.notna().to_numpy()


def total(design: Design, var: str, domain_mask=None, level: float = 0.95) -> dict:
    """Domain total (R: ``svytotal``), with a t-interval on the design df."""
    values = design.data[var]
    mask = _domain(design, values, domain_mask)
    df, n = design.degf(mask), int(mask.sum())
    if n == 0:
        return _empty(n, df)
    w = np.where(mask, design.weights, 0.0)
    y = np.where(mask, pd.to_numeric(values).to_numpy(dtype=float), 0.0)
    est = float(np.sum(w * y))
    v = design.variance(w * y)
    _, _, vsrs_mean = _mean_parts(design, y, mask)
    se, q = float(np.sqrt(v)), _t_quantile(df, level)
    vsrs = vsrs_mean * w.sum() ** 2
    return {"estimate": est, "se": se, "ci_low": est - q * se, "ci_high": est + q * se, "n": n,
            "deff": float(v / vsrs) if vsrs > 0 else float("nan"), "df": df}


def by(design: Design, var: str, group_col: str, stat: str = "mean", level=None,
       domain_mask=None) -> dict:
    """Per-group domain estimates (R: ``svyby``): ``{group level: result dict}``, sorted by level.

    ``stat`` is "mean", "proportion" (needs ``level``) or "total".  Each group is a
    domain of the whole design, so PSUs outside the group still count.
    """
    groups = design.data[group_col]
    base = np.ones(len(groups), dtype=bool) if domain_mask is None else np.asarray(domain_mask, dtype=bool)
    out = {}
    for g in sorted(groups.dropna().unique(), key=lambda x: (str(type(x)), x)):
        mask = base & (groups == g).to_numpy()
        if stat == "mean":
            out[g] = mean(design, var, mask)
        elif stat == "proportion":
            out[g] = proportion(design, var, level, mask)
        elif stat == "total":
            out[g] = total(design, var, mask)
        else:
            raise ValueError(f"stat must be 'mean', 'proportion' or 'total', got {stat!r}")
    return out


# --------------------------------------------------------------------------- weights alone

def kish_deff(weights) -> float:
    """Kish's design effect from unequal weights: 1 + CV² = n Σw² / (Σw)²."""
    w = np.asarray(weights, dtype=float)
    w = w[~np.isnan(w)]
    return float(len(w) * np.sum(w**2) / np.sum(w) ** 2)


def effective_n(weights) -> float:
    """Kish's effective sample size (Σw)² / Σw² = n / deff."""
    w = np.asarray(weights, dtype=float)
    w = w[~np.isnan(w)]
    return float(np.sum(w) ** 2 / np.sum(w**2))
