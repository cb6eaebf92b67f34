"""Quarterly trends: a mixed model per outcome, with convergence checked before anything is reported.

MixedLM (wave as fixed effect, respondent random intercept) uses every response — linked panel members and
one-off respondents alike. statsmodels can return estimates from an optimiser that did not converge, so the
result carries `converged` and the report shows only converged models. Ordinal single items use
OrderedModel with the logit link stated (statsmodels' default would be probit).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd


def mixed_trend(frame: pd.DataFrame, column: str, wave_col: str = "wave", key_col: str = "respondent_key") -> dict:
    """Wave effects against the first wave for `column`; {'converged', 'table', 'method', 'n', 'groups'}."""
    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    data = frame[[column, wave_col, key_col]].copy()
    data[column] = pd.to_numeric(data[column], errors="coerce")
    data = data.dropna(subset=[column])
    # respondents without a key are their own group: they add to the wave means, not to the within-person part
    data[key_col] = data[key_col].fillna("").astype(str)
    blank = data[key_col] == ""
    data.loc[blank, key_col] = "anon-" + data.index[blank].astype(str)
    waves = sorted(data[wave_col].unique(), key=str)
    data[wave_col] = pd.Categorical(data[wave_col], categories=waves)
    empty = {"converged": False, "table": pd.DataFrame(), "method": "MixedLM (REML)", "n": len(data), "groups": 0}
    if len(waves) < 2 or len(data) < 10:
        return empty
    model = smf.mixedlm(f"{column} ~ C({wave_col})", data, groups=data[key_col])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = model.fit(reml=True, method=["lbfgs", "bfgs"])
        except (np.linalg.LinAlgError, ValueError):
            return empty
    converged = bool(getattr(fit, "converged", False)) and not any(
        issubclass(w.category, ConvergenceWarning) for w in caught)
    ci = fit.conf_int()
    rows = []
    for name in fit.fe_params.index:
        if not name.startswith(f"C({wave_col})"):
            continue
        rows.append({"wave": name.split("[T.")[-1].rstrip("]"), "effect": fit.fe_params[name], "se": fit.bse[name],
                     "ci_low": ci.loc[name, 0], "ci_high": ci.loc[name, 1], "p_value": fit.pvalues[name]})
    return {"converged": converged, "table": pd.DataFrame(rows), "method": "MixedLM (REML), random intercept per respondent",
            "n": int(len(data)), "groups": int(data[key_col].nunique()), "baseline": waves[0]}


def ordinal_trend(frame: pd.DataFrame, column: str, wave_col: str = "wave") -> dict:
    """Proportional-odds model of an ordinal item on wave (logit link), with its convergence."""
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    data = frame[[column, wave_col]].copy()
    data[column] = pd.to_numeric(data[column], errors="coerce")
    data = data.dropna()
    waves = sorted(data[wave_col].unique(), key=str)
    if len(waves) < 2 or data[column].nunique() < 3:
        return {"converged": False, "table": pd.DataFrame(), "method": "OrderedModel (logit)"}
    exog = pd.get_dummies(pd.Categorical(data[wave_col], categories=waves), drop_first=True, dtype=float)
    exog.index = data.index
    model = OrderedModel(data[column].astype(int), exog, distr="logit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(method="bfgs", disp=False, maxiter=500)
    converged = bool(fit.mle_retvals.get("converged", False))
    ci = fit.conf_int()
    rows = [{"wave": str(name), "log_odds": fit.params[name], "ci_low": ci.loc[name, 0], "ci_high": ci.loc[name, 1],
             "p_value": fit.pvalues[name]} for name in exog.columns]
    return {"converged": converged, "table": pd.DataFrame(rows), "method": "OrderedModel, logit link (proportional odds)"}
