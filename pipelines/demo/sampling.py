"""Who answers each wave: non-response, a panel with attrition, and the messiness of real downloads.

Response propensity depends on compound, age band and household registration — the same variables the
traits depend on — so the raw sample over-represents some groups and weighting has a real bias to remove.
Baseline respondents are re-surveyed in later waves with attrition (the panel); fresh respondents top each
wave up to its target size. Messiness is planted at realistic rates and recorded, so cleaning tests know
what should be caught.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook
from pipelines.config import Config, Wave
from pipelines.demo.population import Population, _stable

SAMPLE_SIZE = {"parent": (460, 300), "child": (380, 260), "community": (520, 200)}  # (baseline, quarterly)
RETENTION = [0.50, 0.45, 0.40, 0.36, 0.33]  # share of baseline respondents still answering, by quarter

COMPOUND_PROPENSITY = {"jinshang": 1.6, "zhongfucheng": 1.4, "fengzeyuan": 1.0, "zhongfu": 1.0,
                       "jinhong": 0.9, "yiyuan": 0.55, "laiyin": 0.8, "yulu": 0.6}
BAND_PROPENSITY = {"8-11": 1.35, "12-14": 1.0, "15-17": 0.6, "0-5": 1.2, "6-11": 1.1, "12-17": 0.7,
                   "18-39": 0.7, "40-59": 1.1, "60+": 1.35}
HUKOU_PROPENSITY = {"registered": 1.15, "floating": 0.55}

RATES = {"duplicate": 0.02, "near_duplicate": 0.01, "speeder": 0.03, "straightliner": 0.02,
         "compound_variant": 0.08, "compound_unknown": 0.005, "age_suffix": 0.2, "age_chinese": 0.03,
         "age_out_of_range": 0.005, "ineligible_age": 0.012, "test_response": 0.004}
CHINESE_DIGITS = "零一二三四五六七八九"


def propensity(units: pd.DataFrame) -> np.ndarray:
    return (units["compound"].map(COMPOUND_PROPENSITY).fillna(1.0).to_numpy()
            * units["band"].map(BAND_PROPENSITY).fillna(1.0).to_numpy()
            * units["hukou"].map(HUKOU_PROPENSITY).fillna(1.0).to_numpy())


def draw_samples(pop: Population, waves: list[Wave], seed: int, scale: int = 1) -> dict[str, np.ndarray]:
    """Unit ids responding in each wave (baseline, then panel + fresh respondents)."""
    rng = np.random.default_rng([seed, _stable(pop.instrument), 7])
    base_n, wave_n = (x * scale for x in SAMPLE_SIZE.get(pop.instrument, (200, 100)))
    prop = propensity(pop.units)
    n_units = len(pop.units)
    samples: dict[str, np.ndarray] = {}
    baseline: np.ndarray | None = None
    for i, wave in enumerate(waves):
        if wave.kind == "baseline":
            p = np.minimum(1.0, base_n * prop / prop.sum())
            baseline = np.flatnonzero(rng.random(n_units) < p)
            samples[wave.id] = baseline
            continue
        keep = RETENTION[min(i - 1, len(RETENTION) - 1)]
        panel = np.array([], dtype=int)
        if baseline is not None and len(baseline):
            # attrition is heavier where response is lower: missing at random given the weighting variables
            p_stay = np.minimum(1.0, keep * (prop[baseline] / prop[baseline].mean()) ** 0.4)
            panel = baseline[rng.random(len(baseline)) < p_stay]
        cap = int(0.6 * wave_n)  # a wave is at most 60% panel: the rest are new respondents
        if len(panel) > cap:
            panel = np.sort(rng.choice(panel, size=cap, replace=False))
        need = max(0, wave_n - len(panel))
        fresh_pool = np.setdiff1d(np.arange(n_units), panel)
        p = np.minimum(1.0, need * prop[fresh_pool] / prop[fresh_pool].sum())
        fresh = fresh_pool[rng.random(len(fresh_pool)) < p]
        samples[wave.id] = np.sort(np.concatenate([panel, fresh]))
    return samples


def add_metadata(answers: pd.DataFrame, book: Codebook, wave: Wave, seed: int) -> pd.DataFrame:
    """Platform columns a download carries: 序号, submission time, time taken, channel and IP."""
    rng = np.random.default_rng([seed, _stable(book.instrument), _stable(wave.id), 11])
    n = len(answers)
    n_questions = max(1, len(book.qnums))
    days = (wave.end - wave.start).days + 1
    start = pd.Timestamp(wave.start)
    offsets = (rng.integers(0, days, n) * 86400 + rng.integers(8 * 3600, 22 * 3600, n))
    submitted = (start + pd.to_timedelta(np.sort(offsets), unit="s")).floor("s")
    meta = pd.DataFrame({
        "platform_id": np.arange(1, n + 1).astype(str),
        "submitted_at": submitted,
        "duration_s": np.round(rng.lognormal(np.log(9.0 * n_questions), 0.35, n)),
        "channel": rng.choice(["手机提交/微信", "手机提交/微信", "手机提交/直接访问", "电脑提交/直接访问"], n),
        "ip": [f"{a}.{b}.{c}.{d}(福建-厦门)" for a, b, c, d in
               zip(rng.choice([183, 27, 120, 117], n), rng.integers(1, 255, n), rng.integers(1, 255, n),
                   rng.integers(1, 255, n))],
    }, index=answers.index)
    return pd.concat([meta, answers], axis=1)


def plant_messiness(frame: pd.DataFrame, book: Codebook, config: Config, seed: int,
                    wave_id: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Messiness at realistic rates; returns the messy frame and how many of each kind were planted."""
    rng = np.random.default_rng([seed, _stable(book.instrument), _stable(wave_id), 13])
    out = frame.copy()
    n = len(out)
    planted: dict[str, int] = {}

    def pick(rate: float, pool: np.ndarray | None = None) -> np.ndarray:
        pool = np.arange(n) if pool is None else pool
        k = int(rng.binomial(len(pool), rate)) if len(pool) else 0
        return np.sort(rng.choice(pool, size=k, replace=False)) if k else np.array([], dtype=int)

    idx = out.index.to_numpy()
    compound_q = book.by_role("compound")
    if compound_q is not None:
        variants = {c.name_zh: [*c.aliases, c.name_zh + " ", c.name_zh + "\u3000", " " + c.name_zh]
                    for c in config.compounds}
        rows = pick(RATES["compound_variant"])
        col = out[compound_q.name].astype("string")
        for r in rows:
            name = col.iloc[r]
            if isinstance(name, str) and name in variants:
                col.iloc[r] = variants[name][rng.integers(len(variants[name]))]
        unknown = pick(RATES["compound_unknown"])
        col.iloc[unknown] = rng.choice(["金上花园", "江头小区", "不知道"], len(unknown))
        out[compound_q.name] = col
        planted["compound_variant"], planted["compound_unknown"] = len(rows), len(unknown)
    age_q = book.by_role("child_age") or book.by_role("respondent_age")
    if age_q is not None:
        col = out[age_q.name].astype("string")
        suffix = pick(RATES["age_suffix"])
        col.iloc[suffix] = col.iloc[suffix] + "岁"
        chinese = np.setdiff1d(pick(RATES["age_chinese"]), suffix)
        col.iloc[chinese] = [_chinese_number(int(v)) + "岁" if str(v).isdigit() else v for v in col.iloc[chinese]]
        bad = pick(RATES["age_out_of_range"])
        col.iloc[bad] = rng.choice(["125", "0", "300"], len(bad))
        planted["age_typed"] = len(suffix) + len(chinese)
        planted["age_out_of_range"] = len(bad)
        if book.min_age is not None:
            inel = np.setdiff1d(pick(RATES["ineligible_age"]), np.concatenate([bad, chinese]))
            col.iloc[inel] = rng.choice([str(book.min_age - 2), str(book.min_age - 1), str(book.max_age + 1)], len(inel))
            planted["ineligible_age"] = len(inel)
        out[age_q.name] = col
    likert = [q for q in book.answer_questions if q.matrix and q.type == "select_one"]
    speeders = pick(RATES["speeder"])
    if len(speeders):
        out.loc[idx[speeders], "duration_s"] = rng.integers(15, 45, len(speeders)).astype(float)
        for q in likert:
            rows = idx[speeders][out.loc[idx[speeders], q.name].notna().to_numpy()]
            out.loc[rows, q.name] = rng.choice(q.codes, len(rows))
    planted["speeder"] = len(speeders)
    if len(likert) >= config.thresholds.straightline_min_items:
        straight = np.setdiff1d(pick(RATES["straightliner"]), speeders)
        for r in straight:
            value = int(rng.choice(likert[0].codes))
            for q in likert:
                if pd.notna(out.at[idx[r], q.name]) and value in q.codes:
                    out.at[idx[r], q.name] = value
        planted["straightliner"] = len(straight)
    name_q = book.by_role("link_name")
    tests = pick(RATES["test_response"])
    if name_q is not None and len(tests):
        out.loc[idx[tests], name_q.name] = "测试"
    planted["test_response"] = len(tests) if name_q is not None else 0
    dups = pick(RATES["duplicate"])
    near = pick(RATES["near_duplicate"])
    extra = [out.iloc[dups].copy()]
    near_rows = out.iloc[near].copy()
    single = [q for q in book.answer_questions if q.type == "select_one" and not q.role and len(q.codes) > 1]
    for r in range(len(near_rows)):
        q = single[rng.integers(len(single))] if single else None
        if q is not None and pd.notna(near_rows.iloc[r][q.name]):
            near_rows.iloc[r, near_rows.columns.get_loc(q.name)] = rng.choice(
                [c for c in q.codes if c != near_rows.iloc[r][q.name]])
    extra.append(near_rows)
    out = pd.concat([out, *extra], ignore_index=True)
    n_extra = len(dups) + len(near)
    if n_extra:
        # a second submission a few minutes later, e.g. after pressing "submit" twice or re-opening the link
        later = out["submitted_at"].iloc[n:] + pd.to_timedelta(rng.integers(30, 900, n_extra), unit="s")
        out.loc[out.index[n:], "submitted_at"] = later.to_numpy()
    out = out.sort_values("submitted_at", kind="stable").reset_index(drop=True)
    out["platform_id"] = np.arange(1, len(out) + 1).astype(str)
    planted["duplicate"], planted["near_duplicate"] = len(dups), len(near)
    return out, planted


def _chinese_number(v: int) -> str:
    if v >= 100:
        return str(v)
    if v < 10:
        return CHINESE_DIGITS[v]
    if v < 20:
        return "十" + (CHINESE_DIGITS[v - 10] if v > 10 else "")
    tens, ones = divmod(v, 10)
    return CHINESE_DIGITS[tens] + "十" + (CHINESE_DIGITS[ones] if ones else "")


def wave_date(wave: Wave) -> dt.date:
    return wave.start
