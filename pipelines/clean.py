"""Cleaning: from the raw responses to the clean table, with every change and every exclusion on record.

Rules run in a fixed order; a row excluded by an earlier rule is not counted again by a later one, so the
funnel adds up: rows read = rows kept + rows excluded. Values are never silently changed — each change is
a row of the cleaning log — and an evaluator's decisions file (`config/decisions.csv`) is re-applied on
every run, so manual review survives reruns.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook
from pipelines.config import Config, fold_name
from pipelines.decisions import apply_decisions
from pipelines.frames import column_arrays
from pipelines.privacy import normalise_phone, normalise_text_id, respondent_keys, scrub_text
from pipelines.scales import add_scores

META = ["response_id", "respondent_key", "wave", "instrument", "submitted_at", "duration_s", "channel"]
LOG_COLUMNS = ["response_id", "column", "old", "new", "rule"]
EXCLUSION_COLUMNS = ["source_file", "source_row", "response_id", "rule", "reason"]
RULE_ORDER = ["decision_drop", "test_response", "compound_unresolved", "outside_community", "ineligible_age",
              "speeder", "straightliner", "duplicate", "duplicate_respondent"]
TEST_WORDS = re.compile(r"^(测试|test|ceshi|试填|测试数据|aaa+|111+)$", re.IGNORECASE)
CHINESE_NUMERALS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
                    "八": 8, "九": 9}


@dataclass
class CleanResult:
    frame: pd.DataFrame
    log: pd.DataFrame
    exclusions: pd.DataFrame
    funnel: pd.DataFrame
    missing: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


def parse_age(value: object) -> float:
    """`8`, `8岁`, `八岁`, `十二`, `12周岁`, `8.5` → years; anything else → NaN."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return np.nan
    text = unicodedata.normalize("NFKC", str(value)).strip()
    text = re.sub(r"(周岁|岁半|岁|年)$", "", text).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if text and all(ch in CHINESE_NUMERALS or ch == "十" for ch in text):
        if "十" in text:
            tens, _, ones = text.partition("十")
            return float((CHINESE_NUMERALS.get(tens, 1) if tens else 1) * 10 + (CHINESE_NUMERALS.get(ones, 0) if ones else 0))
        if len(text) == 1:
            return float(CHINESE_NUMERALS[text])
    return np.nan


def parse_number(value: object) -> float:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return np.nan
    text = unicodedata.normalize("NFKC", str(value)).strip()
    match = re.fullmatch(r"-?\d+(\.\d+)?", re.sub(r"[个人次岁元]$", "", text))
    return float(match.group(0)) if match else np.nan


def clean_responses(raw: pd.DataFrame, missing: pd.DataFrame, book: Codebook, config: Config, wave: str,
                    key: bytes, decisions: pd.DataFrame | None = None) -> CleanResult:
    return clean_waves([(wave, raw, missing)], book, config, key, decisions)[0]


def clean_waves(parts: Sequence[tuple[str, pd.DataFrame, pd.DataFrame]], book: Codebook, config: Config,
                key: bytes, decisions: pd.DataFrame | None = None) -> list[CleanResult]:
    """`clean_responses` for several waves of one instrument, (wave, raw, missing) each: the same results,
    wave by wave, computed on the waves' rows stacked together when their exports have the same columns and
    dtypes. Cleaning costs per column far more than per row (a demo wave has ~300 rows and ~90 columns), so
    six waves stacked cost about a quarter of six cleaned one by one. Every rule is per row except the
    speeder limit (each wave's own median) and duplicates (within a wave), which take the wave into account."""
    if len(parts) > 1 and not _stackable(parts):
        return [clean_waves([part], book, config, key, decisions)[0] for part in parts]
    waves = [wave for wave, _, _ in parts]
    sizes = [len(raw) for _, raw, _ in parts]
    bounds = np.cumsum([0, *sizes])
    segments = list(zip(waves, bounds[:-1].tolist(), bounds[1:].tolist()))
    several = len(parts) > 1
    # (a copy: raw is never changed)
    df = pd.concat([raw for _, raw, _ in parts], ignore_index=True) if several else parts[0][1].reset_index(drop=True)
    logs: list[pd.DataFrame] = []
    prefix = np.repeat(np.array([f"{w}-{book.instrument}-" for w in waves], dtype=object), sizes)
    df.insert(0, "response_id", pd.Series(prefix, index=df.index, dtype=object) + df["platform_id"].astype(str))
    df["wave"] = np.repeat(np.array(waves, dtype=object), sizes)
    df["instrument"] = book.instrument
    df["review_flag"] = ""
    # each row's first exclusion rule and reason ("" = kept), as arrays: rules run a few dozen times per table
    excluded = np.full(len(df), "", dtype=object)
    reason = np.full(len(df), "", dtype=object)

    def exclude(mask: pd.Series | np.ndarray, rule: str, why: pd.Series | str) -> None:
        new = _flags(mask) & (excluded == "")
        excluded[new] = rule
        reason[new] = why.to_numpy(dtype=object)[new] if isinstance(why, pd.Series) else why

    df["respondent_key"] = _respondent_keys(df, book, config, key)
    manual = apply_decisions(df, decisions, book)
    logs.append(manual.apply_sets(df))  # before the rules, so a set value is cleaned like a typed one
    exclude(manual.drop, "decision_drop", manual.drop_reason)
    exclude(_test_responses(df, book), "test_response", "测试答卷（姓名或建议为“测试/test”）")
    logs.append(_normalise_compound(df, book, config, exclude))
    logs.append(_parse_numbers(df, book, exclude))
    logs.append(_clean_text(df, book))
    logs.append(_skip_logic(df, book))
    _speeders(df, config, exclude, segments)
    _straightliners(df, book, config, exclude)
    _duplicates(df, book, config, exclude, by_wave=several)
    keep_override = manual.keep & (excluded != "")
    if keep_override.any():
        logs.append(pd.DataFrame({"response_id": df.loc[keep_override, "response_id"], "column": "(row)",
                                  "old": pd.Series(excluded, index=df.index)[keep_override], "new": "kept",
                                  "rule": "decision_keep"}))
        excluded[keep_override.to_numpy(dtype=bool)] = ""
    kept = pd.Series(excluded == "", index=df.index)
    exclusions = pd.DataFrame({"source_file": df.loc[~kept, "source_file"], "source_row": df.loc[~kept, "source_row"],
                               "response_id": df.loc[~kept, "response_id"],
                               "rule": pd.Series(excluded, index=df.index)[~kept],
                               "reason": pd.Series(reason, index=df.index)[~kept]})
    clean = _derive(_rows(df, kept.to_numpy()), book, config)
    columns = META + [c for c in book.clean_columns() if c in clean.columns]
    skip = set(columns) | _drop_columns(book, df)
    derived = [c for c in clean.columns if c not in skip]
    clean = clean[columns + derived]
    logs = [x for x in logs if x is not None and len(x)]
    if not several:
        return [_result(waves[0], book, df, parts[0][2], clean, logs, exclusions)]
    kept_before = np.concatenate([[0], np.cumsum(kept.to_numpy())])
    results = []
    for (wave, lo, hi), (_, raw, missing) in zip(segments, parts):
        a, b = int(kept_before[lo]), int(kept_before[hi])
        if a == b:  # every row excluded: cleaned alone (an empty table's columns are typed as one wave's are)
            results.append(clean_waves([(wave, raw, missing)], book, config, key, decisions)[0])
            continue
        part = clean.iloc[a:b].copy()
        part.index = pd.RangeIndex(b - a)
        ids = set(df["response_id"].iloc[lo:hi])
        results.append(_result(wave, book, df.iloc[lo:hi], missing, part,
                               [x for x in (x[x["response_id"].isin(ids)] for x in logs) if len(x)],
                               exclusions[(exclusions.index >= lo) & (exclusions.index < hi)]))
    return results


def _stackable(parts) -> bool:
    """Whether the waves' exports can be cleaned as one table: the same columns with the same dtypes (then
    every per-row rule gives each row what it gives in its own wave)."""
    first, first_missing = parts[0][1], parts[0][2]
    return all(list(raw.columns) == list(first.columns) and raw.dtypes.tolist() == first.dtypes.tolist()
               and raw.columns.is_unique and list(missing.columns) == list(first_missing.columns)
               for _, raw, missing in parts)


def _result(wave: str, book: Codebook, df: pd.DataFrame, missing: pd.DataFrame, clean: pd.DataFrame,
            logs: list[pd.DataFrame], exclusions: pd.DataFrame) -> CleanResult:
    """One wave's CleanResult, from its rows of the (stacked) table: `df` all rows read, `clean` those kept."""
    log = pd.concat(logs or [pd.DataFrame(columns=LOG_COLUMNS)], ignore_index=True)[LOG_COLUMNS]
    log = log[log["response_id"].isin(set(clean["response_id"]))].reset_index(drop=True)
    funnel = _funnel(wave, book.instrument, len(df), exclusions, len(clean))
    assert len(df) == len(clean) + len(exclusions), "row accounting broke: read ≠ kept + excluded"
    return CleanResult(clean, log, exclusions.reset_index(drop=True), funnel,
                       _missing_long(df, missing, clean), {"read": len(df), "kept": len(clean),
                                                           "excluded": len(exclusions)})


def _rows(df: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """`df.loc[keep]` relabelled 0..n-1. Cut column by column and wrapped once: pandas' row selection over
    ~250 one-column blocks costs twice as much. (Falls back to .loc if a column would change dtype.)"""
    if df.columns.is_unique:
        out = pd.DataFrame({c: cells[keep] for c, cells in zip(df.columns, column_arrays(df, df.columns))},
                           index=pd.RangeIndex(int(keep.sum())), copy=False)
        if out.dtypes.tolist() == df.dtypes.tolist():
            return out
    return df.loc[keep].set_axis(pd.RangeIndex(int(keep.sum())), axis=0, copy=False)


def _flags(mask: pd.Series | np.ndarray) -> np.ndarray:
    """A row mask as a bool array (a missing value selects nothing, as in pandas indexing)."""
    if isinstance(mask, pd.Series):
        return mask.to_numpy(dtype=bool, na_value=False)
    return np.asarray(mask, dtype=bool)


def _respondent_keys(df: pd.DataFrame, book: Codebook, config: Config, key: bytes) -> pd.Series:
    if config.linkage["identifier"] == "phone":
        q = book.by_role("link_phone")
        ident = df[q.name].map(normalise_phone) if q is not None and q.name in df else pd.Series("", index=df.index)
    else:
        parts = [book.by_role(r) for r in ("link_name", "compound", "link_room")]
        if any(p is None or p.name not in df for p in parts):
            ident = pd.Series("", index=df.index)
        else:
            ident = df[parts[0].name].map(normalise_text_id) + "|" + df[parts[1].name].map(
                lambda v: config.compound_for(v) or "") + "|" + df[parts[2].name].map(normalise_text_id)
            ident = ident.where(~ident.str.startswith("|") & ~ident.str.endswith("|"), "")
    return respondent_keys(ident, key)


def _test_responses(df: pd.DataFrame, book: Codebook) -> pd.Series:
    mask = pd.Series(False, index=df.index)
    for q in book.questions:
        if q.type == "text" and q.name in df and (q.role in ("link_name",) or q.name == "suggestion"):
            text = df[q.name].astype("string").str.strip()
            mask |= text.str.fullmatch(TEST_WORDS).fillna(False).astype(bool)
    return mask


def _normalise_compound(df, book, config, exclude) -> pd.DataFrame | None:
    q = book.by_role("compound")
    if q is None or q.name not in df:
        return None
    typed = df[q.name].astype("string")
    ids = typed.map(lambda v: config.compound_for(v) if isinstance(v, str) else None)
    known = {fold_name(s): c.id for c in config.compounds for s in (c.name_zh, *c.aliases)}
    unresolved = ids.isna() & typed.notna()
    closest = typed[unresolved].map(lambda v: "、".join(
        dict.fromkeys(known[m] for m in difflib.get_close_matches(fold_name(v), list(known), n=3, cutoff=0.3))) or "无")
    why = pd.Series("", index=df.index, dtype=object)
    why[unresolved] = ("小区名称无法识别：“" + typed[unresolved].astype(str) + "”；最接近：" + closest
                       + "（请在 config/project.toml 添加别名，或在 config/decisions.csv 中指定）")
    exclude(unresolved, "compound_unresolved", why)
    df.loc[unresolved, "review_flag"] = "compound_unresolved"
    exclude(typed.isna(), "compound_unresolved", "未填写小区（无法确定是否为本社区住户）")
    changed = ids.notna() & (typed != ids.map({c.id: c.name_zh for c in config.compounds}))
    log = pd.DataFrame({"response_id": df.loc[changed, "response_id"], "column": q.name,
                        "old": typed[changed], "new": ids[changed], "rule": "compound_alias"})
    df[q.name] = ids.astype("string")
    return log


def _parse_numbers(df, book, exclude) -> pd.DataFrame:
    logs = []
    for q in book.answer_questions:
        if q.type not in ("integer", "decimal") or q.name not in df:
            continue
        raw = df[q.name]
        parser = parse_age if q.role in ("child_age", "respondent_age") else parse_number
        values, shown = _parse_column(raw, parser)
        text = raw.astype("string").str.strip()
        reformatted = values.notna() & (text != shown)
        logs.append(pd.DataFrame({"response_id": df.loc[reformatted, "response_id"], "column": q.name,
                                  "old": text[reformatted], "new": values[reformatted].map(lambda v: f"{v:g}"),
                                  "rule": "number_parsed"}))
        unreadable = values.isna() & text.notna() & (text != "")
        out_of_range = pd.Series(False, index=df.index)
        if q.min is not None:
            out_of_range |= values < q.min
        if q.max is not None:
            out_of_range |= values > q.max
        if q.role == "child_age" and book.min_age is not None:
            # ages outside the child questionnaire's range but plausible are ineligible respondents, not typos
            plausible = values.between(0, 18)
            ineligible = plausible & ((values < book.min_age) | (values > book.max_age))
            exclude(ineligible, "ineligible_age", "年龄 " + shown + " 岁，不在儿童问卷的 "
                    f"{book.min_age}–{book.max_age} 岁范围内")
            out_of_range &= ~plausible
        bad = unreadable | out_of_range
        logs.append(pd.DataFrame({"response_id": df.loc[bad, "response_id"], "column": q.name, "old": text[bad],
                                  "new": "", "rule": np.where(unreadable[bad], "unreadable_number", "out_of_range")}))
        df[q.name] = values.where(~bad).astype("Float64")
    return pd.concat(logs, ignore_index=True) if logs else None


def _parse_column(raw: pd.Series, parser) -> tuple[pd.Series, pd.Series]:
    """(`raw.map(parser).astype(float)`, each number as `f"{v:g}"`). A text column is parsed once per
    distinct answer (typed numbers repeat a lot); other columns cell by cell, as before."""
    if not isinstance(raw.dtype, pd.StringDtype) or not len(raw):
        values = raw.map(parser).astype(float)
        return values, values.map(lambda v: f"{v:g}")
    take, uniques = pd.factorize(raw, use_na_sentinel=False)
    parsed = np.array([parser(u) for u in uniques], dtype=float)
    shown = np.empty(len(uniques), dtype=object)
    shown[:] = [f"{v:g}" for v in parsed]
    return (pd.Series(parsed[take], index=raw.index, name=raw.name),
            pd.Series(shown[take], index=raw.index, name=raw.name))


def _clean_text(df, book) -> pd.DataFrame:
    logs = []
    text_cols = [q.name for q in book.answer_questions if q.type == "text" and q.role != "compound"]
    text_cols += [q.other_column for q in book.answer_questions if q.other_choice is not None]
    for col in text_cols:
        if col not in df:
            continue
        text = df[col].astype("string").map(lambda v: unicodedata.normalize("NFKC", v).strip() if isinstance(v, str) else v)
        text = text.astype("string").replace("", pd.NA)
        scrubbed, changed = scrub_text(text)
        logs.append(pd.DataFrame({"response_id": df.loc[changed, "response_id"], "column": col,
                                  "old": "（个人信息，不记录）", "new": scrubbed[changed], "rule": "personal_data_scrubbed"}))
        df[col] = scrubbed
    return pd.concat(logs, ignore_index=True) if logs else None


def _skip_logic(df, book) -> pd.DataFrame:
    """Answers to questions the form should not have shown are removed (the stated rule: logic wins)."""
    logs = []
    for q in book.answer_questions:
        if q.relevant is None:
            continue
        hidden = ~q.relevant.applies(df)
        for col in q.clean_columns():
            if col not in df or col.endswith("_correct"):
                continue
            bad = hidden & df[col].notna()
            if bad.any():
                logs.append(pd.DataFrame({"response_id": df.loc[bad, "response_id"], "column": col,
                                          "old": df.loc[bad, col].astype(str), "new": "",
                                          "rule": "skip_logic_contradiction"}))
                df.loc[bad, col] = pd.NA
    return pd.concat(logs, ignore_index=True) if logs else None


def _speeders(df, config, exclude, segments) -> None:
    """Faster than a fraction of the median duration of the respondent's own wave (`segments`: each wave's
    rows, (wave, first, end))."""
    t = config.thresholds
    durations = pd.to_numeric(df["duration_s"], errors="coerce")
    shown = None
    for _, lo, hi in segments:
        part = durations.iloc[lo:hi]
        if part.notna().sum() < t.speeder_min_responses:
            continue
        limit = t.speeder_fraction_of_median * part.median()
        fast = np.zeros(len(df), dtype=bool)
        fast[lo:hi] = (part < limit).to_numpy(dtype=bool)
        if shown is None:
            shown = durations.map(lambda v: f"{v:g}")
        exclude(fast, "speeder", "用时 " + shown + " 秒，少于中位数的 "
                f"{t.speeder_fraction_of_median:.0%}（{limit:.0f} 秒）")


def _straightliners(df, book, config, exclude) -> None:
    items = [q.name for q in book.answer_questions if q.matrix and q.type == "select_one" and q.name in df]
    if len(items) < config.thresholds.straightline_min_items:
        return
    block = np.column_stack([pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float) for c in items])
    answered = pd.Series((~np.isnan(block)).sum(axis=1), index=df.index)
    with np.errstate(invalid="ignore"):
        same = pd.Series(np.nanmax(block, axis=1) == np.nanmin(block, axis=1), index=df.index) if len(df) else \
            pd.Series(False, index=df.index)
    exclude(same & (answered >= config.thresholds.straightline_min_items), "straightliner",
            "全部 " + answered.astype(str) + " 个矩阵题选了同一个选项")


def _answer_columns(book: Codebook, df: pd.DataFrame) -> list[str]:
    return [c for q in book.answer_questions for c in q.clean_columns() if c in df and not c.endswith("_correct")]


_NO_ANSWER = np.iinfo(np.int64).min


def _value_codes(cells) -> np.ndarray:
    """Per-cell codes of a column's array (`Series.array`) that are equal exactly where the cells' texts
    (`astype("string")`) are equal, and equal for missing cells. Integers are their own codes (missing: the
    smallest int64, unless a cell holds it); strings are factorized; other dtypes are converted to text first
    (the slow part, so only for them)."""
    dtype = cells.dtype
    if pd.api.types.is_integer_dtype(dtype):
        values = np.array(cells.to_numpy(dtype=np.int64, na_value=0), dtype=np.int64)
        missing = np.asarray(cells.isna(), dtype=bool)
        if not (values[~missing] == _NO_ANSWER).any():
            values[missing] = _NO_ANSWER
            return values
    elif not isinstance(dtype, pd.StringDtype):
        cells = cells.astype("string")
    return pd.factorize(cells)[0]


def _answer_codes(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """(rows, columns) array of `_value_codes`: comparing two rows' codes compares their answers as texts."""
    if not cols:
        return np.zeros((len(df), 0), dtype=np.int64)
    codes = [_value_codes(cells) for cells in column_arrays(df, cols)]
    return np.column_stack(codes).astype(np.int64, copy=False)


def _row_ids(codes: np.ndarray) -> np.ndarray:
    """One id per distinct row of a code table (equal ids exactly for equal rows), in first-seen order."""
    rows = np.ascontiguousarray(codes, dtype=np.int64)
    return pd.factorize(np.array([row.tobytes() for row in rows], dtype=object))[0]


def _duplicates(df, book, config, exclude, by_wave: bool = False) -> None:
    """Exact duplicates (the same answers and respondent key as an earlier submission) and repeat answers by one
    respondent within a phase. Rows are compared through per-column value codes (`_answer_codes`), never by
    converting every cell to text. `df` has a RangeIndex, so index labels are row positions. `by_wave`: `df`
    holds several waves, and a duplicate is one within the same wave."""
    if not len(df):
        return
    cols = _answer_columns(book, df)
    codes = _answer_codes(df, cols)
    who = ["respondent_key", "wave"] if by_wave else ["respondent_key"]
    signature = _row_ids(np.column_stack([codes, _answer_codes(df, who)]))
    by_time = df["submitted_at"].sort_values(kind="stable").index.to_numpy()
    in_time = signature[by_time]
    exact = np.zeros(len(df), dtype=bool)
    exact[by_time] = pd.Series(in_time).duplicated().to_numpy()
    ids, earliest = np.unique(in_time, return_index=True)  # each signature's earliest row
    first_id = np.empty(signature.max() + 1, dtype=object)
    first_id[ids] = df["response_id"].to_numpy(dtype=object)[by_time[earliest]]
    exclude(exact, "duplicate", "与答卷 " + pd.Series(first_id[signature], index=df.index).astype(str)
            + " 完全相同（重复提交）")
    keyed = ((df["respondent_key"].fillna("") != "") & ~exact).to_numpy(dtype=bool)
    phase = book.by_role("phase")
    # an activity's pre and post tests are the same person twice by design: a duplicate is within a phase
    by = who + [phase.name] if phase is not None and phase.name in df else who
    limit = config.thresholds.near_duplicate_max_diff
    # each respondent's earliest answer first
    sub = df.loc[keyed, list(dict.fromkeys(by + ["submitted_at"]))].sort_values("submitted_at", kind="stable")
    if sub.empty:
        return
    grouped = sub.groupby(by, sort=False, dropna=False)
    first = sub.index.to_numpy()[grouped.cumcount().to_numpy() == 0]  # per group, in group order
    later = grouped.cumcount().to_numpy() > 0
    if not later.any():
        return
    first_of = first[grouped.ngroup().to_numpy()]  # each row's group's first row (index label)
    rows = sub.index.to_numpy()[later]
    differ = (codes[rows] != codes[first_of[later]]).sum(axis=1)
    response_id = df["response_id"].to_numpy(dtype=object)
    why = pd.Series("", index=df.index, dtype=object)
    why[rows] = [f"同一受访者（同一联系方式）本轮已有答卷 {response_id[f]}；{d} 题不同"
                 f"（{'near-duplicate' if d <= limit else 'repeat'}），保留最早一份"
                 for f, d in zip(first_of[later], differ)]
    exclude(pd.Series(df.index.isin(rows), index=df.index), "duplicate_respondent", why)


def _derive(clean: pd.DataFrame, book: Codebook, config: Config) -> pd.DataFrame:
    dtypes = dict(zip(clean.columns, clean.dtypes))
    for q in book.answer_questions:
        if q.type in ("select_one",) and q.name in clean:
            _to_int64(clean, q.name, dtypes)
        if q.type in ("select_multiple", "rank"):
            for code in q.codes:
                col = q.option_column(code)
                if col in clean:
                    _to_int64(clean, col, dtypes)
    age_q = book.by_role("child_age") if book.instrument in ("parent", "child") else book.by_role("respondent_age")
    if age_q is not None and age_q.name in clean:
        for band_name in ("age_band", "child_age_band"):
            if band_name == "child_age_band" and book.instrument != "parent":
                continue
            if band_name == "age_band" and book.instrument == "parent":
                continue
            clean[band_name] = _bands(clean[age_q.name], config.age_bands.get(band_name, ()))
    hukou = book.by_role("hukou")
    if hukou is not None and hukou.name in clean:
        clean["hukou_group"] = clean[hukou.name].map({1: "registered", 2: "floating"}).astype("string")
    return add_scores(clean, book, copy=False)  # (a temporary frame: clean_responses selects columns from it)


def _to_int64(frame: pd.DataFrame, column: str, dtypes: dict) -> None:
    """Code columns as Int64; ingest already gives Int64, and re-assigning an unchanged column costs time."""
    if not isinstance(dtypes[column], pd.Int64Dtype):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")


def _bands(ages: pd.Series, bands) -> pd.Series:
    out = np.empty(len(ages), dtype=object)
    out[:] = pd.NA
    values = pd.to_numeric(ages, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    for label, lo, hi in bands:
        out[(values >= lo) & (values <= hi + 0.999)] = label
    return pd.Series(out, index=ages.index, dtype="string")


def _drop_columns(book: Codebook, df: pd.DataFrame) -> set[str]:
    personal = {q.name for q in book.questions if q.personal}
    return personal | {"ip", "platform_id", "source_file", "source_row"}


def _funnel(wave, instrument, read, exclusions, kept) -> pd.DataFrame:
    counts = exclusions["rule"].value_counts()
    rows = [{"wave": wave, "instrument": instrument, "step": 0, "rule": "read", "rows": read}]
    for i, rule in enumerate([r for r in RULE_ORDER if r in counts] + sorted(set(counts.index) - set(RULE_ORDER))):
        rows.append({"wave": wave, "instrument": instrument, "step": i + 1, "rule": rule, "rows": int(counts[rule])})
    rows.append({"wave": wave, "instrument": instrument, "step": len(rows), "rule": "kept", "rows": kept})
    return pd.DataFrame(rows)


def _missing_long(df: pd.DataFrame, missing: pd.DataFrame, clean: pd.DataFrame) -> pd.DataFrame:
    if missing is None or not len(missing):
        return pd.DataFrame(columns=["response_id", "column", "reason"])
    if "source_file" in missing:  # (indexes built from the two columns: set_index would copy the whole table)
        ids = pd.Series(df["response_id"].to_numpy(),
                        index=pd.MultiIndex.from_arrays([df["source_file"], df["source_row"]]))
        keys = pd.MultiIndex.from_arrays([missing["source_file"], missing["source_row"]])
    else:
        ids = df.set_index("source_row")["response_id"]
        keys = missing["source_row"]
    out = pd.DataFrame({"response_id": ids.reindex(keys).to_numpy(), "column": missing["column"].to_numpy(),
                        "reason": missing["reason"].to_numpy()})
    return out[out["response_id"].isin(set(clean["response_id"]))].reset_index(drop=True)
