"""A synthetic population of 金尚社区 and its true answers in every wave.

The demo must give weighting a real bias to correct and the outcome tests a known truth, so answers come
from latent traits that differ between compounds, ages and household registration (the same variables
that drive non-response in `sampling.py`), and services shift the traits over the service year by known
amounts (`EFFECTS`). Every unit of the population answers every wave, so the truth is the population's own
answers — a finite-population truth, not a model parameter.
"""
from __future__ import annotations

import hashlib

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook, Question
from pipelines.config import Config

# True service effects on the latent trait behind each indicator, in SD units at the end of the year.
# Zero effects are deliberate: the outcome tests check that nothing is found there.
EFFECTS = {
    "safe_play": 0.35, "traffic_safety": 0.0, "space_use": 0.30,
    "parent_child_comm": 0.35, "family_reading": 0.25, "parenting_confidence": 0.30,
    "wellbeing": 0.40, "safety_knowledge": 0.70, "life_education": 0.50, "mh_service_awareness": 0.60,
    "prosocial": 0.0, "help_willingness": 0.20,
    "voice_counts": 0.35, "participation": 0.60, "sense_of_community": 0.0, "governance_awareness": 0.45,
    "satisfaction": 0.0,
}
# How far the services have got by each quarterly wave (share of the full effect).
RAMP = {"baseline": 0.0}

# Differences between groups on every trait (SD units): what makes an unweighted sample biased.
COMPOUND_SHIFT = {"jinshang": 0.35, "zhongfucheng": 0.30, "fengzeyuan": 0.05, "zhongfu": 0.0,
                  "jinhong": -0.05, "yiyuan": -0.40, "laiyin": -0.10, "yulu": -0.35}
BAND_SHIFT = {"8-11": 0.30, "12-14": 0.0, "15-17": -0.35, "0-5": 0.15, "6-11": 0.05, "12-17": -0.20,
              "18-39": -0.25, "40-59": 0.05, "60+": 0.30}
HUKOU_SHIFT = {"registered": 0.20, "floating": -0.45}

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蔡蒋余于杜叶程苏魏吕丁任沈姚卢")
GIVEN = list("子涵欣怡浩宇梓轩雨桐思远佳琪俊杰晨曦一诺沐阳若汐明轩语嫣嘉怡宇航诗涵博文紫萱睿泽安琪昊天婉清")


@dataclass
class Population:
    """Units of one instrument's population with their fixed attributes and latent traits."""

    instrument: str
    units: pd.DataFrame          # unit_id, compound, band, hukou, age, gender, role_code, phone, name, room, propensity
    traits: dict[str, np.ndarray]  # trait key → baseline latent value per unit


def wave_ramp(config: Config) -> dict[str, float]:
    quarterly = [w.id for w in config.waves if w.kind == "quarterly"]
    ramp = {w.id: 0.0 for w in config.waves if w.kind == "baseline"}
    for i, wid in enumerate(quarterly):
        ramp[wid] = (i + 1) / len(quarterly)
    return ramp


def _exact_levels(levels: dict[str, float], n: int, rng: np.random.Generator) -> np.ndarray:
    """An array of level labels whose counts match the margin shares exactly (largest remainder)."""
    keys = list(levels)
    shares = np.array([levels[k] for k in keys], dtype=float)
    raw = shares / shares.sum() * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts))[: n - counts.sum()]:
        counts[i] += 1
    out = np.repeat(np.array(keys, dtype=object), counts)
    rng.shuffle(out)
    return out


def build_population(config: Config, book: Codebook, seed: int, scale: int = 1) -> Population:
    rng = np.random.default_rng([seed, _stable(book.instrument)])
    pop = config.populations.get(book.population)
    if pop is None:
        raise ValueError(f"instrument {book.instrument} has no population to simulate")
    n = int(round(pop.total)) * scale
    units = pd.DataFrame({"unit_id": np.arange(n)})
    units["compound"] = _exact_levels(pop.margins["compound"], n, rng)
    band_var = next((v for v in pop.margins if v in ("age_band", "child_age_band")), None)
    bands = config.age_bands[band_var] if band_var else config.age_bands["age_band"]
    units["band"] = _exact_levels(pop.margins[band_var], n, rng) if band_var else "18-39"
    units["hukou"] = (_exact_levels(pop.margins["hukou"], n, rng) if "hukou" in pop.margins
                      else rng.choice(["registered", "floating"], size=n, p=[0.77, 0.23]))
    lo = units["band"].map({b[0]: b[1] for b in bands}).to_numpy()
    hi = units["band"].map({b[0]: b[2] for b in bands}).to_numpy()
    units["age"] = rng.integers(lo, hi + 1)
    units["gender"] = rng.choice([1, 2], size=n)
    units["role_code"] = rng.choice([1, 2, 3, 4], size=n, p=[0.25, 0.60, 0.12, 0.03])
    units["phone"] = ["1" + str(x) for x in rng.choice([3, 5, 8], size=n) * 10**9 + rng.integers(0, 10**9, size=n)]
    units["phone"] = units["phone"].where(~units["phone"].duplicated(), units["unit_id"].map(lambda i: f"199{i:08d}"))
    units["name"] = (np.array(SURNAMES, dtype=object)[rng.integers(0, len(SURNAMES), n)]
                     + np.array(GIVEN, dtype=object)[rng.integers(0, len(GIVEN), n)]
                     + np.array(GIVEN, dtype=object)[rng.integers(0, len(GIVEN), n)])
    units["room"] = [f"{b}号楼{f}{r:02d}室" for b, f, r in zip(rng.integers(1, 20, n), rng.integers(1, 30, n),
                                                            rng.integers(1, 5, n))]
    shift = (units["compound"].map(COMPOUND_SHIFT).fillna(0).to_numpy()
             + units["band"].map(BAND_SHIFT).fillna(0).to_numpy()
             + units["hukou"].map(HUKOU_SHIFT).fillna(0).to_numpy())
    traits = {}
    for key in sorted({trait_key(q) for q in book.answer_questions}):
        # each trait loads on the group differences to its own degree, so needs and outcomes differ by group
        loading = 0.5 + (_stable(key) % 100) / 100
        traits[key] = loading * shift + rng.normal(0, 1, n)
    return Population(book.instrument, units, traits)


def trait_key(q: Question) -> str:
    return q.indicator or q.scale or q.name


def _stable(text: str) -> int:
    """A seed component from a name, stable across runs (Python's hash() is salted)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little") % (2**31)
