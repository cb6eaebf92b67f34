"""Every population unit's true answers to one questionnaire in one wave, derived from the codebook.

Nothing here knows the questionnaire's content: answers follow from each question's type, measure, role,
scale and indicator, so the demo keeps working when the questionnaires are edited.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook, Question
from pipelines.config import Config
from pipelines.demo.population import EFFECTS, Population, _stable, trait_key

SUGGESTIONS = [
    "希望多组织亲子活动，周末时间更方便。",
    "小区里的儿童游乐设施需要定期检修。",
    "上学路上车辆太多，希望增加交通协管员。",
    "希望社区图书馆延长开放时间。",
    "建议多开展心理健康讲座，孩子学习压力大。",
    "希望有更多孩子能参与的志愿服务。",
    "四点半课堂很好，希望继续办下去。",
    "希望增加安全教育活动，比如防溺水、防诈骗。",
    "议事会很有意义，孩子回家讲了很多。",
    "活动通知可以提前在业主群里发，我的电话13812345678可以联系我。",
    "老人带孩子的家庭希望有更多照顾。",
    "<script>alert('x')</script>希望网站安全",
    "建议在法治广场增加遮阳设施。",
]
OTHER_TEXTS = ["篮球场", "编程课", "游泳安全", "书法", "社区菜园"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _offset(name: str, spread: float = 0.6) -> float:
    """A stable per-question intercept so items differ from each other."""
    return ((_stable(name) % 1000) / 1000 - 0.5) * 2 * spread


def answer_wave(pop: Population, book: Codebook, config: Config, wave_id: str, ramp: float,
                seed: int) -> pd.DataFrame:
    """Answers of every unit in one wave: the RawResponses question columns (docs/architecture.md)."""
    rng = np.random.default_rng([seed, _stable(book.instrument), _stable(wave_id)])
    units = pop.units
    n = len(units)
    # transient wave-to-wave noise per trait and unit: panels are correlated, not identical
    z = {k: v + rng.normal(0, 0.35, n) for k, v in pop.traits.items()}
    cols: dict[str, object] = {}
    for q in book.questions:
        key = trait_key(q)
        trait = z.get(key, np.zeros(n)) + EFFECTS.get(q.indicator, 0.0) * ramp
        _answer(q, trait, units, config, rng, cols)
    frame = pd.DataFrame(cols, index=units.index)
    _apply_relevance(book, frame)
    return frame


def _answer(q: Question, trait: np.ndarray, units: pd.DataFrame, config: Config, rng, cols: dict) -> None:
    n = len(units)
    if q.type == "select_one":
        cols[q.name] = pd.array(_select_one(q, trait, units, rng), dtype="Int64")
        if q.other_choice is not None:
            is_other = cols[q.name] == q.other_choice.code
            cols[q.other_column] = pd.array(np.where(is_other.fillna(False), rng.choice(OTHER_TEXTS, n), None),
                                            dtype="string")
    elif q.type == "select_multiple":
        chosen = _select_multiple(q, trait, units, rng)
        for j, code in enumerate(q.codes):
            cols[q.option_column(code)] = pd.array(chosen[:, j].astype(int), dtype="Int64")
        if q.other_choice is not None:
            j = q.codes.index(q.other_choice.code)
            cols[q.other_column] = pd.array(np.where(chosen[:, j], rng.choice(OTHER_TEXTS, n), None), dtype="string")
    elif q.type == "rank":
        ranks = _rank(q, trait, units, rng)
        for j, code in enumerate(q.codes):
            cols[q.option_column(code)] = pd.array(ranks[:, j], dtype="Int64")
    elif q.type in ("integer", "decimal"):
        cols[q.name] = pd.array(_number(q, units, rng), dtype="string")
    elif q.type == "text":
        cols[q.name] = pd.array(_text(q, units, config, rng), dtype="string")
    else:  # date: not asked by the bundled questionnaires
        cols[q.name] = pd.array([None] * n, dtype="string")


def _select_one(q: Question, trait, units, rng) -> np.ndarray:
    k = len(q.choices)
    n = len(units)
    if q.role == "hukou":
        return np.where(units["hukou"].to_numpy() == "registered", 1, 2)
    if q.role == "gender":
        return np.minimum(units["gender"].to_numpy(), k)
    if q.role == "respondent_role":
        return np.minimum(units["role_code"].to_numpy(), k)
    if q.correct is not None:
        right = rng.random(n) < _sigmoid(1.1 * trait + 0.3 + _offset(q.name, 0.8))
        wrong_codes = [c for c in q.codes if c != q.correct]
        return np.where(right, q.correct, rng.choice(wrong_codes, n))
    if q.measure == "binary" and k == 2:
        yes = rng.random(n) < _sigmoid(1.2 * trait + _offset(q.name, 1.0))
        return np.where(yes, 1, 2)
    if q.measure in ("ordinal", "interval") and (q.indicator or q.scale or q.satisfaction or k >= 4):
        sign = -1.0 if q.reverse else 1.0
        latent = sign * 0.9 * trait + _offset(q.name, 0.5) + rng.normal(0, 0.75, n)
        cuts = np.linspace(-1.6, 1.6, k - 1) - 0.35  # answers lean to the agreeable end, as real Likert data do
        return 1 + (latent[:, None] > cuts[None, :]).sum(axis=1)
    # nominal: group-dependent category shares
    base = np.array([_offset(f"{q.name}:{c}", 1.2) for c in q.codes])
    comp = units["compound"].map(lambda c: _stable(c) % 7 / 7).to_numpy()
    util = base[None, :] + 0.8 * np.outer(comp, np.sin(np.arange(k))) + rng.gumbel(size=(n, k))
    return np.asarray(q.codes)[util.argmax(axis=1)]


def _group_utility(q: Question, trait, units, k: int) -> np.ndarray:
    base = np.array([_offset(f"{q.name}:{c}", 1.4) - 0.6 for c in q.codes])
    if q.other_choice is not None:
        base[q.codes.index(q.other_choice.code)] = -3.2
    comp_effect = np.array([[_offset(f"{q.name}:{c}:{cid}", 0.6) for c in q.codes]
                            for cid in sorted(units["compound"].unique())])
    comp_index = pd.Categorical(units["compound"], categories=sorted(units["compound"].unique())).codes
    band_effect = units["band"].map(lambda b: _offset(b, 0.5)).to_numpy()[:, None] * np.cos(np.arange(k))[None, :]
    return base[None, :] + comp_effect[comp_index] + band_effect + 0.4 * trait[:, None]


def _select_multiple(q: Question, trait, units, rng) -> np.ndarray:
    k = len(q.choices)
    util = _group_utility(q, trait, units, k)
    chosen = rng.random(util.shape) < _sigmoid(util)
    none = ~chosen.any(axis=1)
    chosen[none, util[none].argmax(axis=1)] = True  # an answered multi-select has at least one option
    return chosen


def _rank(q: Question, trait, units, rng) -> np.ndarray:
    k = len(q.choices)
    util = _group_utility(q, trait, units, k) + rng.gumbel(size=(len(units), k))
    order = np.argsort(-util, axis=1)
    ranks = np.full((len(units), k), np.nan)
    top = min(3, k)
    rows = np.arange(len(units))
    for position in range(top):
        ranks[rows, order[:, position]] = position + 1
    return ranks


def _number(q: Question, units, rng) -> np.ndarray:
    n = len(units)
    if q.role in ("child_age", "respondent_age"):
        return units["age"].astype(str).to_numpy()
    lo = int(q.min) if q.min is not None else 0
    hi = int(q.max) if q.max is not None else lo + 10
    values = lo + np.minimum(rng.poisson(0.6, n), hi - lo)
    return values.astype(str)


def _text(q: Question, units, config: Config, rng) -> np.ndarray:
    n = len(units)
    if q.role == "compound":
        names = {c.id: c.name_zh for c in config.compounds}
        return units["compound"].map(names).to_numpy()
    if q.role == "link_phone":
        return units["phone"].to_numpy()
    if q.role == "link_name":
        return units["name"].to_numpy()
    if q.role == "link_room":
        return units["room"].to_numpy()
    answered = rng.random(n) < 0.3
    return np.where(answered, rng.choice(np.array(SUGGESTIONS, dtype=object), n), None)


def _apply_relevance(book: Codebook, frame: pd.DataFrame) -> None:
    """Blank out answers to questions the form would not have shown (in questionnaire order)."""
    for q in book.questions:
        if q.relevant is None:
            continue
        shown = q.relevant.applies(frame).to_numpy()
        for col in _raw_columns(q):
            if col in frame.columns:
                frame.loc[~shown, col] = pd.NA


def _raw_columns(q: Question) -> list[str]:
    if q.type in ("select_multiple", "rank"):
        cols = [q.option_column(c) for c in q.codes]
    else:
        cols = [q.name]
    if q.other_choice is not None:
        cols.append(q.other_column)
    return cols
