"""Needs-assessment estimates for every question, overall and by group (CONTRACT §4 `estimates.csv`).

A report table holds thousands of estimates (every option of every question, in every group), so they are
computed as matrices: one column of influence values per estimate, one pass through the design's variance
(strata, raking residuals) for a block of columns. `pipelines.survey.mean/proportion` are the reference
one-at-a-time implementations; the tests hold both to the same numbers, and those to R.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook
from pipelines.frames import column_arrays
from pipelines.lazy import scipy_sparse as sparse, scipy_special as special
from pipelines.survey import Design

COLUMNS = ["wave", "instrument", "indicator", "stat", "level", "group_var", "group", "estimate", "se", "ci_low",
           "ci_high", "n", "deff", "suppressed"]
GROUP_VARS = ["compound", "age_band", "child_age_band", "hukou_group", "relation"]
BLOCK = 256


@dataclass(frozen=True)
class Estimand:
    indicator: str
    stat: str        # mean / proportion
    level: str       # proportion level ('' for means)


def estimands(frame: pd.DataFrame, book: Codebook) -> list[Estimand]:
    """Every published estimate of one clean table: options' shares, ordinal/numeric means, scores."""
    out: list[Estimand] = []
    for q in book.answer_questions:
        if q.type == "select_one" and q.name in frame:
            out.extend(Estimand(q.name, "proportion", str(c)) for c in q.codes)
            if q.measure in ("ordinal", "interval"):
                out.append(Estimand(q.name, "mean", ""))
        elif q.type == "select_multiple":
            out.extend(Estimand(q.option_column(c), "proportion", "1") for c in q.codes if q.option_column(c) in frame)
        elif q.type in ("integer", "decimal") and q.name in frame:
            out.append(Estimand(q.name, "mean", ""))
    for scale in book.scales.values():
        for col in [scale.score_column, *(scale.subscale_column(s) for s in sorted(scale.subscales))]:
            if col in frame:
                out.append(Estimand(col, "mean", ""))
        if f"{scale.id}_low" in frame:
            out.append(Estimand(f"{scale.id}_low", "proportion", "1"))
    for q in book.answer_questions:
        if q.correct is not None and q.correct_column in frame:
            out.append(Estimand(q.correct_column, "proportion", "1"))
        if q.type == "select_multiple" and f"{q.name}_count" in frame:
            out.append(Estimand(f"{q.name}_count", "mean", ""))
    return out


def _values(numeric: dict[str, np.ndarray], e: Estimand) -> tuple[np.ndarray, np.ndarray]:
    """(y, defined) for one estimand: y is 0/1 for a proportion; defined marks non-missing answers."""
    raw = numeric[e.indicator]
    defined = ~np.isnan(raw)
    if e.stat == "proportion":
        return np.where(raw == float(e.level), 1.0, 0.0), defined
    return np.nan_to_num(raw), defined


class BatchEstimator:
    """Domain means of many variables under one design, equal to `survey.mean` one at a time."""

    def __init__(self, design: Design, confidence: float = 0.95):
        self.design = design
        self.confidence = confidence
        lay = design.layout
        n = len(design.data)
        self.w = lay.weights
        self.stratum = lay.stratum
        n_strata = len(lay.n_psu_in_stratum)
        self.S = sparse.csr_matrix((np.ones(n), (np.arange(n), lay.stratum)), shape=(n, n_strata))
        self.psu = lay.psu
        self.n_psu = len(lay.psu_stratum)
        self.P = sparse.csr_matrix((np.ones(n), (np.arange(n), lay.psu)), shape=(n, self.n_psu))
        self.psu_stratum = lay.psu_stratum
        self.n_h = lay.n_psu_in_stratum
        scale = lay.fpc_factor * np.where(self.n_h > 1, self.n_h / np.maximum(self.n_h - 1, 1), 1.0)[lay.psu_stratum]
        self.scale = scale
        self.margins = []
        if design.rake_margins:
            psws = design.rake_weights or tuple(self.w for _ in design.rake_margins)
            for col, psw in zip(design.rake_margins, psws):
                codes = pd.factorize(design.data[col])[0]
                G = sparse.csr_matrix((np.ones(n), (np.arange(n), codes)), shape=(n, codes.max() + 1))
                self.margins.append((G, np.asarray(G.sum(axis=0)).ravel(), np.asarray(psw, dtype=float)))
        self.PS = sparse.csr_matrix((np.ones(self.n_psu), (np.arange(self.n_psu), self.psu_stratum)),
                                    shape=(self.n_psu, n_strata))
        # the transposed maps, made once (`.T` builds a new matrix object at every use)
        self.S_T, self.P_T, self.PS_T = self.S.T, self.P.T, self.PS.T
        self._rake = self._raking_map() if self.margins else None
        # the usual design here: every respondent is their own PSU (no clusters), so PSU totals are the rows
        # themselves and the sparse PSU maps can be skipped (two fewer passes over an n×m block)
        self.row_psu = self.n_psu == n
        if self.row_psu:
            self.row_scale = scale[self.psu]
            self.row_lonely = (self.n_h == 1)[self.stratum]
        self._buffers: dict[str, np.ndarray] = {}

    def _work(self, name: str, m: int) -> np.ndarray:
        """A reusable n×m scratch array (contiguous), one per `name`.

        A block's arrays are large (rows × 256 floats, hundreds of KB): allocated afresh for every step,
        freeing two of them at once lets the C library return the memory to the system, and the next
        allocation pays a page fault per 4 KB again, which cost ~10× the arithmetic. Kept for the
        estimator's life, they are allocated once."""
        n = len(self.w)
        flat = self._buffers.get(name)
        if flat is None or len(flat) < n * m:
            flat = self._buffers[name] = np.empty(n * max(m, BLOCK))
        return flat[:n * m].reshape(n, m)

    def _raking_map(self) -> tuple:
        """svyrecvar's raking residuals as a low-rank map: Z ↦ Z − U·K·Vᵀ·Z.

        R removes each margin's weighted means in turn, 10 passes (pass k subtracts U_k·((V_kᵀ·Z)/counts_k),
        with U_k = psw_k·G_k and V_k = G_k/psw_k for the margin's indicator matrix G_k). Every pass only
        subtracts combinations of U's columns and reads Z only through Vᵀ·Z, so the 10 passes collapse to
        one small matrix K (categories × categories), found by running the passes on the identity. The
        result equals the passes exactly (up to rounding) at O(rows × estimates) cost, at any scale."""
        U = sparse.hstack([sparse.diags(psw) @ G for G, _, psw in self.margins]).tocsr()
        V = sparse.hstack([sparse.diags(1.0 / psw) @ G for G, _, psw in self.margins]).tocsc()
        counts = np.concatenate([c for _, c, _ in self.margins])
        edges = np.cumsum([0] + [G.shape[1] for G, _, _ in self.margins])
        VtU = (V.T @ U).toarray()
        K = np.zeros((len(counts), len(counts)))
        B = np.eye(len(counts))
        for _ in range(10):
            for lo, hi in zip(edges[:-1], edges[1:]):
                K[lo:hi] += (B[lo:hi] - VtU[lo:hi] @ K) / counts[lo:hi, None]
        return U, K, V.T.tocsr()

    def _residualise(self, Z: np.ndarray) -> np.ndarray:
        """Z − U·K·Vᵀ·Z (a new array; Z is left as it is)."""
        if self._rake is None:
            return Z
        U, K, Vt = self._rake
        fitted = U @ (K @ (Vt @ Z))
        return np.subtract(Z, fitted, out=fitted)

    def _variance(self, Z: np.ndarray) -> np.ndarray:
        Z = self._residualise(Z)
        if self.row_psu:
            mean_h = (self.S_T @ Z) / np.maximum(self.n_h, 1)[:, None]
            # (mode="clip": with `out`, the default mode copies through a temporary array first)
            centred = np.take(mean_h, self.stratum, axis=0, out=self._work("centred", Z.shape[1]), mode="clip")
            np.subtract(Z, centred, out=centred)
            if self.row_lonely.any():
                centred[self.row_lonely] = 0.0 if self.design.lonely_psu in ("fail", "certainty", "remove") \
                    else Z[self.row_lonely]
            return self.row_scale @ np.square(centred, out=centred)
        totals = self.P_T @ Z
        mean_h = (self.PS_T @ totals) / np.maximum(self.n_h, 1)[:, None]
        centred = totals - self.PS @ mean_h
        lonely = (self.n_h == 1)[self.psu_stratum]
        centred[lonely] = 0.0 if self.design.lonely_psu in ("fail", "certainty", "remove") else totals[lonely]
        return (self.scale[:, None] * centred**2).sum(axis=0)

    def run(self, Y: np.ndarray, M: np.ndarray, proportion: np.ndarray) -> pd.DataFrame:
        """Y: values (n×m), M: domain masks (n×m, answered and in group), proportion: bool per column."""
        return pd.DataFrame(self.columns(Y, M, proportion))

    def columns(self, Y: np.ndarray, M: np.ndarray, proportion: np.ndarray) -> dict[str, np.ndarray]:
        """`run`'s columns as arrays (estimate, se, ci_low, ci_high, n, deff, df), for callers that
        assemble many blocks into one table."""
        # (the n×m steps write into the estimator's scratch arrays, see `_work`; the arithmetic is the
        # plain expressions', step for step: W = w·M, est = Σ W·Y / Σ W, resid = M ? Y − est : 0, …)
        m = Y.shape[1]
        M_float = self._work("M_float", m)
        M_float[...] = M
        W = np.multiply(self.w[:, None], M_float, out=self._work("W", m))  # (w·1.0 or w·0.0, as w·M)
        psum = W.sum(axis=0)
        n = M.sum(axis=0)
        product = self._work("product", m)
        with np.errstate(invalid="ignore", divide="ignore"):
            est = np.multiply(W, Y, out=product).sum(axis=0) / psum
            resid = np.subtract(Y, est[None, :], out=self._work("resid", m))
            np.putmask(resid, ~M, 0.0)
            Z = np.multiply(W, resid, out=self._work("Z", m))
            var = self._variance(np.divide(Z, psum[None, :], out=Z))
            s2 = np.multiply(W, np.square(resid, out=product), out=product).sum(axis=0) / psum * n / (n - 1)
            vsrs = s2 * (psum - n) / (psum * n)
            deff = np.where(vsrs > 0, var / vsrs, np.nan)
        if self.row_psu:
            df = n - ((self.S_T @ M_float) > 0).sum(axis=0)
        else:
            psus_in = ((self.P_T @ M_float) > 0).astype(float)
            strata_in = ((self.PS_T @ psus_in) > 0).sum(axis=0)
            df = psus_in.sum(axis=0) - strata_in
        se = np.sqrt(var)
        # stdtrit(df, q) is scipy.stats.t.ppf(q, df) without its argument checks (and the ~1 s import)
        # (once per distinct df: a block's columns share a few dozen)
        dfs, at = np.unique(np.maximum(df, 1), return_inverse=True)
        q = np.where(df > 0, special.stdtrit(dfs, 0.5 + self.confidence / 2)[at], np.nan)
        low, high = est - q * se, est + q * se
        with np.errstate(invalid="ignore", divide="ignore"):
            logit = np.log(est / (1 - est))
            se_logit = se / (est * (1 - est))
            p_low = 1 / (1 + np.exp(-(logit - q * se_logit)))
            p_high = 1 / (1 + np.exp(-(logit + q * se_logit)))
        interior = (est > 0) & (est < 1)
        low = np.where(proportion, np.where(interior, p_low, est), low)
        high = np.where(proportion, np.where(interior, p_high, est), high)
        empty = (n == 0) | (psum == 0)
        nan = np.nan
        return {"estimate": np.where(empty, nan, est), "se": np.where(empty, nan, se),
                "ci_low": np.where(empty, nan, low), "ci_high": np.where(empty, nan, high),
                "n": n.astype(int), "deff": np.where(empty, nan, deff), "df": df.astype(int)}


def estimate_table(frame: pd.DataFrame, book: Codebook, design: Design, wave: str, min_cell: int,
                   confidence: float = 0.95, group_vars: list[str] | None = None) -> pd.DataFrame:
    """estimates.csv rows for one clean table: overall, then by each grouping variable present.

    Rows are every estimand within every group (groups outer). They are computed in blocks of BLOCK
    columns (memory stays bounded at any scale) and the table is assembled once at the end."""
    if not len(frame):
        return pd.DataFrame(columns=COLUMNS)
    specs = estimands(frame, book)
    indicators = list(dict.fromkeys(e.indicator for e in specs))
    numeric = {col: _as_floats(cells) for col, cells in zip(indicators, column_arrays(frame, indicators))}
    values = [_values(numeric, e) for e in specs]
    Y_all = np.column_stack([y for y, _ in values])
    defined_all = np.column_stack([d for _, d in values])
    groups: list[tuple[str, str, np.ndarray]] = [("", "", np.ones(len(frame), dtype=bool))]
    for var in group_vars if group_vars is not None else GROUP_VARS:
        if var not in frame.columns or (var == "relation" and book.instrument != "parent"):
            continue
        # each level's rows through the column's codes (one factorize, not a comparison per level)
        codes, levels = pd.factorize(frame[var].astype("string"))
        at = {level: i for i, level in enumerate(levels)}
        for level in sorted(at):
            groups.append((var, str(level), codes == at[level]))
    estimator = BatchEstimator(design, confidence)
    # row r is estimand r % len(specs) within group r // len(specs)
    spec_of = np.tile(np.arange(len(specs)), len(groups))
    group_of = np.repeat(np.arange(len(groups)), len(specs))
    masks = np.column_stack([g[2] for g in groups])
    is_proportion = np.array([e.stat == "proportion" for e in specs])
    blocks = []
    for start in range(0, len(spec_of), BLOCK):
        e, g = spec_of[start:start + BLOCK], group_of[start:start + BLOCK]
        # (take along axis 1 gives C-ordered blocks at once: `Y_all[:, e]` is laid out column-major and
        # made contiguous by a second copy)
        Y = np.take(Y_all, e, axis=1)
        M = np.take(defined_all, e, axis=1) & np.take(masks, g, axis=1)
        blocks.append(estimator.columns(Y, M, is_proportion[e]))
    results = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    suppressed = results["n"] < min_cell
    for col in ("estimate", "se", "ci_low", "ci_high", "deff"):
        results[col][suppressed] = np.nan
    table = pd.DataFrame({
        "wave": np.full(len(spec_of), wave, dtype=object),
        "instrument": np.full(len(spec_of), book.instrument, dtype=object),
        "indicator": _labels([s.indicator for s in specs], spec_of),
        "stat": _labels([s.stat for s in specs], spec_of),
        "level": _labels([s.level for s in specs], spec_of),
        "group_var": _labels([g[0] for g in groups], group_of),
        "group": _labels([g[1] for g in groups], group_of),
        **{k: results[k] for k in ("estimate", "se", "ci_low", "ci_high", "n", "deff")},
        "suppressed": suppressed,
        "df": results["df"],
    })
    return table[COLUMNS + ["df"]]


def _as_floats(cells) -> np.ndarray:
    """A column's array (`Series.array`) as float64 (NaN = missing or not a number). Numeric columns (the
    clean tables' Int64 and Float64) convert directly; `pd.to_numeric` is only needed for text."""
    if pd.api.types.is_numeric_dtype(cells.dtype):
        return cells.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(pd.Series(cells), errors="coerce").to_numpy(dtype=float)


def _labels(names: list[str], index: np.ndarray) -> np.ndarray:
    """`names[i]` for each i in `index`, as an object array (one text column of the table)."""
    out = np.empty(len(names), dtype=object)
    out[:] = names
    return out[index]
