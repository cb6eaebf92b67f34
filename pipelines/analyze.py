"""The analysis stage: estimates, needs priorities, reliability, outcomes and service outputs.

It reads only what the earlier stages hold in memory (the weighted clean tables and their designs) and
returns tidy tables; publishing them is `publish.py`'s job. The longitudinal tables — panel attrition,
reliable change and the quarterly trend models — are computed here too, and their seconds recorded in
`Analysis.extra["seconds"]` (and the run's timings, shown by `tongxing run -v`), because the trend models
are the one part of the analysis whose cost grows with the number of waves.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipelines import stats
from pipelines.attrition import attrition_table
from pipelines.codebook import Codebook
from pipelines.estimates import estimate_table
from pipelines.outcomes import outcome_table, reliable_change_table
from pipelines.privacy import linkage_key
from pipelines.scales import item_parts
from pipelines.services import read_service_records, service_table, summarise
from pipelines.trends import trend_table
from pipelines.weights import design_from_json


@dataclass
class Analysis:
    estimates: pd.DataFrame
    outcomes: pd.DataFrame
    needs_priority: pd.DataFrame
    reliability: pd.DataFrame
    funnel: pd.DataFrame
    composition: pd.DataFrame
    weights: pd.DataFrame
    services: pd.DataFrame
    free_text: pd.DataFrame
    attrition: pd.DataFrame = field(default_factory=pd.DataFrame)         # pipelines.attrition.COLUMNS
    reliable_change: pd.DataFrame = field(default_factory=pd.DataFrame)   # outcomes.RELIABLE_CHANGE_COLUMNS
    trends: pd.DataFrame = field(default_factory=pd.DataFrame)            # trends.TREND_COLUMNS
    extra: dict = field(default_factory=dict)


def label_estimates(table: pd.DataFrame, book: Codebook, config) -> pd.DataFrame:
    """Question and option labels (zh/en) and the service line beside each estimate row."""
    info = {}
    for q in book.answer_questions:
        base = {"question": q.name, "label_zh": q.label_zh, "label_en": q.label_en,
                "service_line": q.service_line or (config.service_line_of(q.indicator).id
                                                   if q.indicator and config.service_line_of(q.indicator) else "")}
        if q.matrix and q.matrix in book.matrices:
            m = book.matrices[q.matrix]
            base["label_zh"] = f"{m.label_zh}—{q.label_zh}"
            base["label_en"] = f"{m.label_en} — {q.label_en}"
        if q.type == "select_multiple":
            for c in q.choices:
                info[q.option_column(c.code)] = base | {"level_label_zh": c.label_zh, "level_label_en": c.label_en}
            info[f"{q.name}_count"] = base | {"level_label_zh": "选择项数", "level_label_en": "options chosen"}
        else:
            info[q.name] = base | {"levels": {str(c.code): (c.label_zh, c.label_en) for c in q.choices}}
        if q.correct is not None:
            info[q.correct_column] = base | {"level_label_zh": "答对", "level_label_en": "correct"}
    for scale in book.scales.values():
        first = book[scale.items[0]]
        line = first.service_line
        info[scale.score_column] = {"question": scale.id, "label_zh": scale.label_zh, "label_en": scale.label_en,
                                    "service_line": line}
        for sub in scale.subscales:
            info[scale.subscale_column(sub)] = {"question": scale.id, "label_zh": f"{scale.label_zh}：{sub}",
                                                "label_en": f"{scale.label_en}: {sub}", "service_line": line}
        info[f"{scale.id}_low"] = {"question": scale.id, "label_zh": f"{scale.label_zh}（低分组）",
                                   "label_en": f"{scale.label_en} (low band)", "service_line": line,
                                   "level_label_zh": "低于临界值", "level_label_en": "below cut-off"}
    def labels_of(ind: str, level) -> tuple:
        meta = info.get(ind, {})
        levels = meta.get("levels", {})
        zh, en = levels.get(str(level), (meta.get("level_label_zh", ""), meta.get("level_label_en", "")))
        return (meta.get("question", ind), meta.get("label_zh", ind), meta.get("label_en", ind), zh, en,
                meta.get("service_line", ""))

    # a table repeats a few hundred (indicator, level) pairs over every group: label each pair once
    # (pairs numbered through the two columns' codes, factorized in C: a Python loop over every row cost more)
    ind_codes, indicators = pd.factorize(table["indicator"], use_na_sentinel=False)
    level_codes, levels = pd.factorize(table["level"], use_na_sentinel=False)
    pairs, codes = np.unique(ind_codes.astype(np.int64) * len(levels) + level_codes, return_inverse=True)
    indicators, levels = np.asarray(indicators, dtype=object), np.asarray(levels, dtype=object)
    distinct = np.empty((len(pairs), 6), dtype=object)
    for i, pair in enumerate(pairs):
        distinct[i] = labels_of(indicators[pair // len(levels)], levels[pair % len(levels)])
    labels = pd.DataFrame(distinct[codes], columns=["question", "label_zh", "label_en", "level_label_zh",
                                                    "level_label_en", "service_line"], index=table.index)
    return pd.concat([table, labels], axis=1)


def needs_priority(estimates: pd.DataFrame, books: dict[str, Codebook]) -> pd.DataFrame:
    """Needs ranked by their estimated share, overall and in every group, with the CIs that qualify them."""
    need_columns = {}
    for book in books.values():
        for q in book.answer_questions:
            if q.need and q.type == "select_multiple":
                for c in q.choices:
                    if not c.other:
                        need_columns[(book.instrument, q.option_column(c.code))] = (c.label_zh, c.label_en)
    if estimates.empty or not need_columns:
        return pd.DataFrame()
    keys = list(zip(estimates["instrument"], estimates["indicator"]))
    part = estimates[[k in need_columns for k in keys]].copy()
    part["option_label_zh"] = [need_columns[(i, c)][0] for i, c in zip(part["instrument"], part["indicator"])]
    part["option_label_en"] = [need_columns[(i, c)][1] for i, c in zip(part["instrument"], part["indicator"])]
    part = part.sort_values(["wave", "instrument", "group_var", "group", "estimate"],
                            ascending=[True, True, True, True, False], kind="stable", na_position="last")
    part["rank"] = part.groupby(["wave", "instrument", "group_var", "group"]).cumcount() + 1
    cols = ["wave", "instrument", "group_var", "group", "rank", "indicator", "option_label_zh", "option_label_en",
            "estimate", "ci_low", "ci_high", "n", "suppressed"]
    return part[cols].reset_index(drop=True)


def table_reliability(frame: pd.DataFrame, book: Codebook, wave: str) -> list[dict]:
    """Cronbach's alpha of each scale of one (wave, instrument) table."""
    rows = []
    for scale in book.scales.values():
        names = [name for name in scale.items if name in frame]
        if len(names) < 2:
            continue
        # the item scores as one float block (NaN = missing): what a frame of `item_scores` Series gives
        # after `.astype(float)`, without a Series per item and a frame conversion
        parts = [item_parts(frame, book[name]) for name in names]
        values = np.column_stack([np.where(missing, np.nan, scores) for scores, missing in parts])
        items = pd.DataFrame(values, index=frame.index, columns=names)
        try:
            res = stats.cronbach_alpha(items)
        except (ValueError, ZeroDivisionError):
            continue
        rows.append({"wave": wave, "instrument": book.instrument, "scale": scale.id, "label_zh": scale.label_zh,
                     "label_en": scale.label_en, **{k: res.get(k) for k in ("alpha", "ci_low", "ci_high", "n", "k")}})
    return rows


@dataclass
class TableAnalysis:
    """The analysis of one (wave, instrument) table alone: computed with the table (in either process of
    the run, see `run.compute_table`) and cached with it, so a rerun redoes only the tables that changed."""

    estimates: pd.DataFrame | None
    reliability: list[dict]


def analyze_table(frame: pd.DataFrame, design_json: dict, book: Codebook, config, wave: str) -> TableAnalysis:
    if not len(frame):
        return TableAnalysis(None, [])
    thresholds = config.thresholds
    est = estimate_table(frame, book, design_from_json(frame, design_json), wave, thresholds.min_cell,
                         thresholds.confidence)
    return TableAnalysis(label_estimates(est, book, config), table_reliability(frame, book, wave))


# the analysis' cross-wave tables, largest first: each is computed by whichever process of a run is free
# (`analyze(state, share)`), from the clean tables alone
SHARED_PARTS = ("trends", "outcomes", "attrition", "reliable_change")


def analysis_part(name: str, frames: dict, books: dict[str, Codebook], config,
                  reliability: pd.DataFrame) -> pd.DataFrame:
    """One of `SHARED_PARTS` from the run's clean tables (`frames`: (wave, instrument) → frame, in wave order)."""
    by_instrument: dict[str, dict[str, pd.DataFrame]] = {}
    for (wave, instrument), frame in frames.items():
        by_instrument.setdefault(instrument, {})[wave] = frame
    if name == "trends":
        return trend_table(by_instrument, books, config)
    if name == "outcomes":
        return outcome_table(by_instrument, books, config)
    if name == "attrition":
        return attrition_table(by_instrument, books, config)
    if name == "reliable_change":
        return reliable_change_table(by_instrument, books, config, reliability)
    raise ValueError(f"no analysis part {name!r}")


def analyze(state, share=None) -> Analysis:
    """The run's analysis. `share` (a run's `Helper.share`): the cross-wave tables are offered to the helper
    process, which takes one whenever it is free, while this process does the rest."""
    config, books = state.config, state.books
    estimates, funnels, compositions, weights, texts = [], [], [], [], []
    frames = {}
    for (wave, instrument), table in state.tables.items():
        frame = table.frame
        frames[(wave, instrument)] = frame
        if table.analysis.estimates is not None:
            estimates.append(table.analysis.estimates)
        funnels.append(table.clean.funnel)
        compositions.append(table.weighted.composition)
        weights.append(pd.DataFrame([table.weighted.diagnostics]))
        if "suggestion" in frame:
            quotes = frame["suggestion"].dropna()
            texts.append(pd.DataFrame({"wave": wave, "instrument": instrument, "text": quotes.to_numpy()}))
    reliability_df = pd.DataFrame([row for _, table in sorted(state.tables.items())
                                   for row in table.analysis.reliability])
    seconds: dict[str, float] = {}
    own: dict[str, object] = {}

    def first() -> None:
        """This process's own part, done before it takes any shared one."""
        own["estimates"] = estimates_df = pd.concat(estimates, ignore_index=True) if estimates else pd.DataFrame()
        services = []
        key = linkage_key(config)
        for wave in state.waves:
            folder = state.root / "data_raw" / wave.id / "services"
            if folder.is_dir():
                services.append(summarise(read_service_records(folder, state.root), wave.id, config, key))
        own["services"] = service_table(services, config)
        own["needs_priority"] = needs_priority(estimates_df, books)

    def here(name: str) -> pd.DataFrame:
        t0 = time.perf_counter()
        result = analysis_part(name, frames, books, config, reliability_df)
        seconds[name] = time.perf_counter() - t0
        return result

    if share is None:
        first()
        parts = dict(zip(SHARED_PARTS, map(here, SHARED_PARTS)))
    else:
        from pipelines.worker import _analysis_part
        parts = dict(zip(SHARED_PARTS, share(list(SHARED_PARTS), here, _analysis_part, reliability_df,
                                             first=first)))
    timings = getattr(state, "timings", None)
    if isinstance(timings, dict):
        timings.update({f"analyze:{k}": v for k, v in seconds.items()})
    return Analysis(
        estimates=own["estimates"],
        outcomes=parts["outcomes"],
        needs_priority=own["needs_priority"],
        reliability=reliability_df,
        funnel=pd.concat(funnels, ignore_index=True) if funnels else pd.DataFrame(),
        composition=pd.concat([c for c in compositions if len(c)], ignore_index=True) if any(len(c) for c in compositions) else pd.DataFrame(),
        weights=pd.DataFrame([w.iloc[0].to_dict() for w in weights]) if weights else pd.DataFrame(),
        services=own["services"],
        free_text=pd.concat(texts, ignore_index=True) if texts else pd.DataFrame(columns=["wave", "instrument", "text"]),
        attrition=parts["attrition"], reliable_change=parts["reliable_change"], trends=parts["trends"],
        extra={"seconds": seconds},
    )
