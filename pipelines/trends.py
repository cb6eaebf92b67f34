"""Quarterly trends: a mixed model per outcome, with convergence checked before anything is reported.

A linear mixed model (wave as fixed effect, respondent random intercept, REML) uses every response —
linked panel members and one-off respondents alike. An optimiser can stop anywhere, so every result carries
`converged` and a `note`, and the report shows coefficients of converged models only. Ordinal single items
use a proportional-odds model with the logit link stated (statsmodels' OrderedModel default would be probit).

Why the models are fitted here in numpy rather than by statsmodels during a run: statsmodels' MixedLM loops
over respondents in Python, about 2 s per scale on the demo (900 respondents, 1,900 responses), so the
eleven demo scales would add ~20 s to a run, and importing statsmodels alone costs ~2 s. A random intercept
has a closed form per respondent (V_i⁻¹ = (I − λ/(1 + n_i λ) J) / σ²), so the REML likelihood profiles down
to one parameter, λ = σ²_u / σ², evaluated with a few vectorised group sums (~0.03 s per scale). Estimates
and variance components are REML's, equal to R's `nlme::lme(method="REML")` and to MixedLM's; the
fixed-effect covariance is the GLS one, σ² (X'V⁻¹X)⁻¹, as in nlme and lme4 (MixedLM inverts its joint
observed Hessian instead, which differs by about 1% in small unbalanced samples and by 1e-4 on the demo);
intervals and p-values are Wald z, as MixedLM reports them. The ordinal model equals `MASS::polr` and
OrderedModel(distr="logit"). tests/test_trends.py holds these numbers to R's. `engine="statsmodels"` fits
MixedLM / OrderedModel themselves (statsmodels imported only then), for notebooks and those checks.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from pipelines.lazy import scipy_special as special

expit, ndtr, ndtri = special.expit, special.ndtr, special.ndtri

MIXED_METHOD = "linear mixed model (REML), wave fixed effect, random intercept per respondent"
ORDINAL_METHOD = "proportional-odds (cumulative logit) model, wave fixed effect"
Z95 = float(ndtri(0.975))   # scipy.stats.norm.ppf(0.975); Wald p-values below are 2·ndtr(−|z|) = 2·norm.sf(|z|)
# the variance ratio λ = σ²_u / σ² is searched over exp(-14) … exp(9): below, the random intercept is nil
# for any survey scale; above, the residual variance would be ~1/8000 of the person variance
LOG_LAMBDA = (-14.0, 9.0)


def _prepare(frame: pd.DataFrame, column: str, wave_col: str, key_col: str | None,
             waves: list[str] | None) -> tuple[pd.DataFrame, list[str]]:
    cols = [column, wave_col] + ([key_col] if key_col else [])
    data = frame[cols].copy()
    data[column] = pd.to_numeric(data[column], errors="coerce").astype(float)
    data = data.dropna(subset=[column])
    data[wave_col] = data[wave_col].astype(str)
    order = [str(w) for w in waves] if waves is not None else sorted(data[wave_col].unique(), key=str)
    present = set(data[wave_col])
    order = [w for w in order if w in present]
    data = data[data[wave_col].isin(order)]
    if key_col:
        # respondents without a key are their own group: they add to the wave means, not to the
        # within-person part
        keys = data[key_col].fillna("").astype(str)
        blank = keys == ""
        keys[blank] = "anon-" + pd.Series(range(int(blank.sum())), index=keys.index[blank]).astype(str)
        data[key_col] = keys
    return data, order


def _design(data: pd.DataFrame, wave_col: str, order: list[str]) -> np.ndarray:
    """Intercept plus one indicator per later wave (treatment coding against order[0])."""
    codes = pd.Categorical(data[wave_col], categories=order).codes
    X = np.zeros((len(data), len(order)))
    X[:, 0] = 1.0
    for j in range(1, len(order)):
        X[:, j] = codes == j
    return X


def _wave_counts(data: pd.DataFrame, wave_col: str, order: list[str]) -> dict[str, int]:
    counts = data[wave_col].value_counts()
    return {w: int(counts.get(w, 0)) for w in order}


# --------------------------------------------------------------------------- linear mixed model

def random_intercept_reml(y: np.ndarray, X: np.ndarray, groups: np.ndarray) -> dict:
    """REML fit of y = Xβ + u_g + e, u_g ~ N(0, σ²_u), e ~ N(0, σ²), by profiling λ = σ²_u / σ².

    For a given λ, with group sizes n_g and w_g = λ / (1 + n_g λ): X'H⁻¹X = X'X − Σ w_g s_g s_g' (s_g the
    group sums of X), and likewise for X'H⁻¹y and y'H⁻¹y, so β̂(λ) and σ̂²(λ) = r'H⁻¹r / (N − p) cost a few
    matrix products. The profiled REML criterion (N − p) log σ̂² + Σ log(1 + n_g λ) + log|X'H⁻¹X| is
    scanned on a log-λ grid (plus λ = 0) and refined by bounded Brent. Not converged: no group with two
    responses (λ not identifiable), a minimum at either end of the range (the MixedLM "boundary" case), or a
    criterion that is not curved upwards at the optimum.
    """
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    codes, uniq = pd.factorize(pd.Series(groups), sort=False)
    G = len(uniq)
    N, p = X.shape
    n_g = np.bincount(codes, minlength=G).astype(float)
    Sx = np.column_stack([np.bincount(codes, weights=X[:, j], minlength=G) for j in range(p)])
    sy = np.bincount(codes, weights=y, minlength=G)
    XtX, Xty, yty = X.T @ X, X.T @ y, float(y @ y)
    out = {"n": int(N), "groups": int(G), "linked": int((n_g >= 2).sum()), "converged": False, "note": ""}
    if N - p < 2 or np.linalg.matrix_rank(XtX) < p:
        out["note"] = "too few responses for the model"
        return out

    def parts(lam: float):
        w = lam / (1.0 + n_g * lam)
        A = XtX - (Sx * w[:, None]).T @ Sx
        b = Xty - Sx.T @ (w * sy)
        c = yty - float(w @ (sy * sy))
        beta = np.linalg.solve(A, b)
        rss = c - float(b @ beta)
        return A, beta, rss

    def criterion(log_lam: float) -> float:
        lam = 0.0 if log_lam == -math.inf else math.exp(log_lam)
        A, _, rss = parts(lam)
        sign, logdet = np.linalg.slogdet(A)
        if rss <= 0 or sign <= 0:
            return math.inf
        return (N - p) * math.log(rss / (N - p)) + float(np.log1p(n_g * lam).sum()) + logdet

    if out["linked"] == 0:
        out["note"] = "no respondent answered twice: the random-intercept variance is not identifiable"
        return out
    grid = np.arange(LOG_LAMBDA[0], LOG_LAMBDA[1] + 1e-9, 0.5)
    values = np.array([criterion(t) for t in grid])
    at_zero = criterion(-math.inf)
    k = int(np.argmin(values))
    if at_zero <= values[k] or k == 0:
        out["note"] = "random-intercept variance estimated at 0 (boundary of the parameter space)"
        return out
    if k == len(grid) - 1:
        out["note"] = "residual variance estimated at 0 (boundary of the parameter space)"
        return out
    from scipy import optimize  # (imported when a model is fitted: ~0.5 s, which a run without trends need not pay)

    res = optimize.minimize_scalar(criterion, bounds=(grid[k - 1], grid[k + 1]), method="bounded",
                                   options={"xatol": 1e-10, "maxiter": 500})
    t = float(res.x)
    h = 1e-3
    curvature = (criterion(t + h) - 2 * criterion(t) + criterion(t - h)) / h**2
    if not res.success or not np.isfinite(res.fun) or not curvature > 0:
        out["note"] = "the REML optimiser did not reach a curved optimum"
        return out
    lam = math.exp(t)
    A, beta, rss = parts(lam)
    sigma2 = rss / (N - p)
    cov = sigma2 * np.linalg.inv(A)
    out.update(converged=True, beta=beta, cov=cov, sigma2=sigma2, sigma2_u=lam * sigma2, reml_criterion=res.fun)
    return out


def mixed_trend(frame: pd.DataFrame, column: str, wave_col: str = "wave", key_col: str = "respondent_key",
                waves: list[str] | None = None, engine: str = "numpy") -> dict:
    """Wave effects against the first wave for `column`.

    Returns {'converged', 'table' (wave, effect, se, ci_low, ci_high, p_value), 'method', 'n', 'groups',
    'linked', 'baseline', 'wave_n', 'note'}. `waves` fixes the order (the first is the baseline); without
    it, waves sort as text. `engine="statsmodels"` fits statsmodels' MixedLM instead (same model).
    """
    data, order = _prepare(frame, column, wave_col, key_col, waves)
    linked = int((data[key_col].value_counts() >= 2).sum()) if len(data) else 0
    base = {"converged": False, "table": pd.DataFrame(columns=["wave", "effect", "se", "ci_low", "ci_high",
                                                               "p_value"]),
            "method": MIXED_METHOD, "n": int(len(data)), "groups": int(data[key_col].nunique()),
            "linked": linked, "baseline": order[0] if order else "", "wave_n": _wave_counts(data, wave_col, order),
            "note": ""}
    if len(order) < 2 or len(data) < 10:
        return base | {"note": "fewer than two waves or ten responses"}
    if engine == "statsmodels":
        return base | _mixed_statsmodels(data, column, wave_col, key_col, order)
    if engine != "numpy":
        raise ValueError(f"engine must be 'numpy' or 'statsmodels', got {engine!r}")
    fit = random_intercept_reml(data[column].to_numpy(float), _design(data, wave_col, order),
                                data[key_col].to_numpy())
    if not fit["converged"]:
        return base | {"note": fit["note"]}
    se = np.sqrt(np.diag(fit["cov"]))
    rows = []
    for j, wave in enumerate(order[1:], start=1):
        est, s = float(fit["beta"][j]), float(se[j])
        z = est / s if s > 0 else math.nan
        rows.append({"wave": wave, "effect": est, "se": s, "ci_low": est - Z95 * s, "ci_high": est + Z95 * s,
                     "p_value": float(2 * ndtr(-abs(z))) if np.isfinite(z) else math.nan})
    return base | {"converged": True, "table": pd.DataFrame(rows), "sigma2": fit["sigma2"],
                   "sigma2_u": fit["sigma2_u"], "intercept": float(fit["beta"][0])}


def _mixed_statsmodels(data: pd.DataFrame, column: str, wave_col: str, key_col: str, order: list[str]) -> dict:
    """statsmodels MixedLM (REML); a ConvergenceWarning counts as not converged."""
    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    data = data.rename(columns={column: "y_", wave_col: "wave_"})
    data["wave_"] = pd.Categorical(data["wave_"], categories=order)
    model = smf.mixedlm("y_ ~ C(wave_)", data, groups=data[key_col])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = model.fit(reml=True, method=["lbfgs", "bfgs"])
        except (np.linalg.LinAlgError, ValueError) as exc:
            return {"note": f"MixedLM failed: {exc}"}
    problems = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    converged = bool(getattr(fit, "converged", False)) and not problems
    if not converged:
        return {"note": "; ".join(problems) or "MixedLM did not converge"}
    ci = fit.conf_int()
    rows = []
    for name in fit.fe_params.index:
        if name.startswith("C(wave_)"):
            rows.append({"wave": name.split("[T.")[-1].rstrip("]"), "effect": fit.fe_params[name],
                         "se": fit.bse[name], "ci_low": ci.loc[name, 0], "ci_high": ci.loc[name, 1],
                         "p_value": fit.pvalues[name]})
    return {"converged": True, "table": pd.DataFrame(rows), "sigma2": float(fit.scale),
            "sigma2_u": float(fit.cov_re.iloc[0, 0]), "intercept": float(fit.fe_params.iloc[0])}


# --------------------------------------------------------------------------- proportional odds (logit)

def _thresholds(a: np.ndarray) -> np.ndarray:
    """Ordered cut-points from free parameters: τ1 = a1, τj = τj−1 + exp(aj)."""
    return np.cumsum(np.concatenate([a[:1], np.exp(a[1:])]))


def _po_negloglik(params: np.ndarray, X: np.ndarray, y: np.ndarray, K: int) -> tuple[float, np.ndarray]:
    """−log L and its gradient for P(Y ≤ k) = F(τk − Xβ), F logistic (R's polr / OrderedModel sign)."""
    p = X.shape[1]
    beta, a = params[:p], params[p:]
    tau = _thresholds(a)
    eta = X @ beta
    big = 1e3    # stands for ±∞: expit(±1000) is exactly 1 / 0 and its density exactly 0
    cuts = np.concatenate([[-big], tau, [big]])
    u, lo = cuts[y + 1] - eta, cuts[y] - eta
    Fu, Fl = expit(u), expit(lo)
    prob = np.maximum(Fu - Fl, 1e-300)
    fu, fl = Fu * (1 - Fu), Fl * (1 - Fl)
    value = -float(np.log(prob).sum())
    g_beta = X.T @ ((fu - fl) / prob)
    g_tau = np.zeros(K - 1)
    upper = y < K - 1
    np.add.at(g_tau, y[upper], -fu[upper] / prob[upper])
    lower = y > 0
    np.add.at(g_tau, y[lower] - 1, fl[lower] / prob[lower])
    # chain rule to a: dτj/da1 = 1, dτj/dam = exp(am) for j ≥ m
    tail = np.cumsum(g_tau[::-1])[::-1]
    g_a = tail * np.concatenate([[1.0], np.exp(a[1:])])
    return value, np.concatenate([g_beta, g_a])


def proportional_odds(y_codes: np.ndarray, X: np.ndarray) -> dict:
    """Maximum likelihood of the cumulative-logit model (no intercept in X; K − 1 cut-points).

    BFGS with the analytic gradient; the covariance is the inverse of the Hessian of −log L, taken by
    central differences of that gradient. Converged: the optimiser reports success (or the gradient is
    under 1e-4 at its end) and the Hessian is positive definite.
    """
    levels, y = np.unique(np.asarray(y_codes), return_inverse=True)
    K, p = len(levels), X.shape[1]
    cum = np.cumsum(np.bincount(y, minlength=K))[:-1] / len(y)
    tau0 = np.log(cum / (1 - cum))
    start = np.concatenate([np.zeros(p), tau0[:1], np.log(np.maximum(np.diff(tau0), 1e-3))])
    from scipy import optimize  # (imported when a model is fitted, as above)

    res = optimize.minimize(_po_negloglik, start, args=(X, y, K), jac=True, method="BFGS",
                            options={"gtol": 1e-7, "maxiter": 1000})
    grad_norm = float(np.max(np.abs(res.jac)))
    step = 1e-5
    H = np.empty((len(res.x), len(res.x)))
    for i in range(len(res.x)):
        e = np.zeros(len(res.x))
        e[i] = step
        H[:, i] = (_po_negloglik(res.x + e, X, y, K)[1] - _po_negloglik(res.x - e, X, y, K)[1]) / (2 * step)
    H = (H + H.T) / 2
    try:
        np.linalg.cholesky(H)
        cov = np.linalg.inv(H)
        definite = True
    except np.linalg.LinAlgError:
        cov, definite = None, False
    converged = bool((res.success or grad_norm < 1e-4) and definite)
    note = "" if converged else ("the Hessian is not positive definite" if not definite
                                 else f"the optimiser stopped: {res.message}")
    return {"converged": converged, "beta": res.x[:p], "cov": None if cov is None else cov[:p, :p],
            "thresholds": _thresholds(res.x[p:]), "levels": levels, "loglik": -float(res.fun), "note": note}


def ordinal_trend(frame: pd.DataFrame, column: str, wave_col: str = "wave", waves: list[str] | None = None,
                  key_col: str | None = "respondent_key", engine: str = "numpy") -> dict:
    """Proportional-odds model of an ordinal item on wave (logit link), with its convergence.

    Effects are log odds ratios of a higher answer against the first wave. Every response is one
    observation: panel members who answered in several waves are not modelled as such (the note says so),
    so the intervals are, if anything, a little narrow. `engine="statsmodels"` fits OrderedModel instead.
    """
    data, order = _prepare(frame, column, wave_col, key_col if key_col in frame else None, waves)
    repeated = int((data[key_col].value_counts() >= 2).sum()) if key_col in data else 0
    base = {"converged": False, "table": pd.DataFrame(columns=["wave", "log_odds", "se", "ci_low", "ci_high",
                                                               "p_value"]),
            "method": ORDINAL_METHOD, "link": "logit", "n": int(len(data)),
            "groups": int(data[key_col].nunique()) if key_col in data else int(len(data)), "linked": repeated,
            "baseline": order[0] if order else "", "wave_n": _wave_counts(data, wave_col, order),
            "note": ""}
    if len(order) < 2 or data[column].nunique() < 3:
        return base | {"note": "fewer than two waves or three answer categories"}
    X = _design(data, wave_col, order)[:, 1:]
    if engine == "statsmodels":
        fit = _ordinal_statsmodels(data[column].to_numpy(), X)
    elif engine == "numpy":
        fit = proportional_odds(data[column].to_numpy(), X)
    else:
        raise ValueError(f"engine must be 'numpy' or 'statsmodels', got {engine!r}")
    if not fit["converged"]:
        return base | {"note": fit["note"]}
    se = np.sqrt(np.diag(fit["cov"]))
    rows = []
    for j, wave in enumerate(order[1:]):
        est, s = float(fit["beta"][j]), float(se[j])
        rows.append({"wave": wave, "log_odds": est, "se": s, "ci_low": est - Z95 * s, "ci_high": est + Z95 * s,
                     "p_value": float(2 * ndtr(-abs(est / s))) if s > 0 else math.nan})
    note = (f"{repeated} respondents answered in more than one wave and count as independent observations"
            if repeated else "")
    return base | {"converged": True, "table": pd.DataFrame(rows), "note": note}


def _ordinal_statsmodels(y: np.ndarray, X: np.ndarray) -> dict:
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    exog = pd.DataFrame(X, columns=[f"w{j}" for j in range(X.shape[1])])
    model = OrderedModel(pd.Series(np.unique(y, return_inverse=True)[1]), exog, distr="logit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(method="bfgs", disp=False, maxiter=1000)
    converged = bool(fit.mle_retvals.get("converged", False))
    p = X.shape[1]
    return {"converged": converged, "beta": np.asarray(fit.params)[:p],
            "cov": np.asarray(fit.cov_params())[:p, :p], "note": "" if converged else "OrderedModel did not converge"}


# --------------------------------------------------------------------------- the published table

TREND_COLUMNS = ["instrument", "indicator", "model", "link", "estimate_name", "baseline_wave", "wave", "estimate",
                 "se", "ci_low", "ci_high", "p_value", "n_wave", "n_baseline", "n_obs", "n_respondents", "n_linked",
                 "converged", "note", "suppressed", "service_line", "label_zh", "label_en"]
MIN_WAVES = 3


def trend_table(frames_by_instrument: dict[str, dict[str, pd.DataFrame]], books, config) -> pd.DataFrame:
    """tables/trends.csv: each scale outcome (mixed model) and ordinal single item (cumulative logit) of a
    population survey observed in at least three waves, every later wave against the baseline.

    A model that did not converge gets one row with `converged` false, its reason in `note` and no
    coefficient, so nothing downstream can show it as if it had. A wave with fewer than min_cell responses
    (or a baseline with fewer) keeps its row, flagged `suppressed`, without numbers.
    """
    from pipelines.indicators import outcomes_for

    min_cell = config.thresholds.min_cell
    order = [w.id for w in config.waves]
    rows: list[dict] = []
    for instrument, frames in sorted(frames_by_instrument.items()):
        book = books[instrument]
        waves = [w for w in order if w in frames]
        if not book.population or len(waves) < MIN_WAVES:
            continue
        scales = {s.score_column for s in book.scales.values()}
        for outcome in outcomes_for(book, config):
            if outcome.level == "interval" and outcome.column in scales:
                kind = "mixed"
            elif outcome.level == "ordinal":
                kind = "ordinal"
            else:
                continue
            present = [w for w in waves if outcome.column in frames[w]]
            ys = [outcome.values(frames[w]).astype(float).to_numpy() for w in present]
            observed = [w for w, y in zip(present, ys) if not np.isnan(y).all()]
            if len(observed) < MIN_WAVES:
                continue
            data = pd.DataFrame({"y": np.concatenate(ys),
                                 "wave": np.concatenate([np.full(len(y), w, dtype=object) for w, y in zip(present, ys)]),
                                 "respondent_key": np.concatenate([frames[w]["respondent_key"].to_numpy()
                                                                   for w in present])})
            if kind == "mixed":
                fit = mixed_trend(data, "y", waves=observed)
                effect, meta = "effect", {"model": "mixed_lm_reml", "link": "identity",
                                          "estimate_name": "mean_difference"}
            else:
                fit = ordinal_trend(data, "y", waves=observed)
                effect, meta = "log_odds", {"model": "ordinal_logit", "link": "logit",
                                            "estimate_name": "log_odds_ratio"}
            common = {"instrument": instrument, "indicator": outcome.column, **meta, "baseline_wave": fit["baseline"],
                      "n_baseline": fit["wave_n"].get(fit["baseline"], 0), "n_obs": fit["n"],
                      "n_respondents": fit["groups"], "n_linked": fit["linked"], "converged": bool(fit["converged"]),
                      "note": fit["note"], "service_line": outcome.service_line, "label_zh": outcome.label_zh,
                      "label_en": outcome.label_en}
            if not fit["converged"]:
                rows.append(common | {"wave": "", "suppressed": False})
                continue
            for r in fit["table"].to_dict("records"):
                n_wave = fit["wave_n"].get(r["wave"], 0)
                small = n_wave < min_cell or common["n_baseline"] < min_cell
                numbers = {} if small else {"estimate": r[effect], "se": r["se"], "ci_low": r["ci_low"],
                                            "ci_high": r["ci_high"], "p_value": r["p_value"]}
                rows.append(common | {"wave": r["wave"], "n_wave": n_wave, "suppressed": small, **numbers})
    table = pd.DataFrame(rows, columns=TREND_COLUMNS)
    for col in ("n_wave", "n_baseline", "n_obs", "n_respondents", "n_linked"):
        table[col] = pd.to_numeric(table[col]).astype("Int64")
    return table
