"""腾讯问卷 (wj.qq.com) downloads → RawResponses (docs/architecture.md).

Layout (/work/shared/research/export-formats.md): metadata `编号, 开始答题时间, 结束答题时间, 答题时长` (seconds),
location columns and, in newer files, `用户标识, 昵称, IP, UA, Referrer`; question headers `1.题干`; a multiple
choice has one column per option `21.题干:选项` that is non-empty when the option was chosen; "please specify"
texts come in `…_填空1` columns; CSV lines end with a comma (an empty last column, dropped by `read_table`);
headers may repeat (the first copy is used); cells may be wrapped in tabs.

Single choice cells hold the option text (mapped to codes through the codebook, as a 问卷星 按文本 download);
a matrix row is `14.题干:行` (or `14.题干—行`); a ranking is assumed to come as one column per item
`26.题干:项目` holding the item's rank position. 腾讯问卷 has no skip marker: an empty cell is `blank` and
cleaning tells skipped from blank with `relevant`. Personal platform metadata (用户标识, 昵称, UA, Referrer,
location) is recognised as metadata so it can never land in a question column; `IP` goes to `ip`.

`read_matched` runs the 问卷星 reader over columns already tied to questions; the Kobo and SPSS adapters use it too.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook, Question
from pipelines.ingest.headers import (ITEM, META, META_PART, OPTION, UNMATCHED, VALUE, ColumnMatch, absent_questions,
                                      check_required, match_headers, normalise_header, option_key, split_qnum,
                                      text_key)
from pipelines.ingest.tables import parse_times, relative, strings
from pipelines.ingest.wjx import _Reader, check_repeated_columns

PLATFORM = "tencent"
TENCENT_META = {"编号", "答题时长"}
TENCENT_TIMES = {"开始答题时间", "结束答题时间"}
#: platform metadata that is not a question (personal or technical): kept out of every question column
PLATFORM_COLUMNS = {"用户标识": "user_id", "昵称": "nickname", "ua": "user_agent", "referrer": "referrer",
                    "自定义字段": "custom", "渠道": "channel_name", "答题状态": "status", "答卷状态": "status"}
PLATFORM_METAS = set(PLATFORM_COLUMNS.values()) | {"location"}
LOCATION = re.compile(r"^(?:地理位置.*|国家.*|省份?|城市|市|区县?|地区)$")
FILL_BLANK = re.compile(r"[_:]?填空\d*$")
NOT_CHOSEN = ["", "0", "未选中", "(跳过)", "（跳过）", "(空)", "（空）"]


def _key(header: object) -> str:
    return normalise_header(header).replace(" ", "").casefold()


def looks_like_tencent(headers) -> bool:
    names = {_key(h) for h in headers}
    return TENCENT_META <= names and bool(names & TENCENT_TIMES)


# ------------------------------------------------------------------------------------------ shared runner

def read_matched(table: pd.DataFrame, matches: list[ColumnMatch], path: Path, codebook: Codebook, root, *,
                 mode: str, platform: str, others: dict[str, int] | None = None, **notes):
    """(frame, missing, info) from a string table whose columns are tied to questions by `matches`.

    `others` maps `<name>_other` columns to the table column holding the platform's "please specify" text.
    """
    check_required(matches, codebook, path)
    check_repeated_columns(table, matches, path)
    others = others or {}
    reader = _Reader(table, path, codebook, mode, relative(path, root))
    frame = reader.run(matches)
    for column, index in others.items():
        frame[column] = strings(column_text(table, index))
    used = set(others.values())
    info = {"platform": platform, "mode": mode, "rows": len(frame),
            "matched": [m.header for m in matches if m.kind != UNMATCHED or m.index in used],
            "unmatched": [m.header for m in matches if m.kind == UNMATCHED and m.index not in used],
            "absent": absent_questions(matches, codebook), **reader.notes, **notes}
    return frame, reader.missing_frame(), info


def column_text(table: pd.DataFrame, index: int) -> np.ndarray:
    """One column as an object array of str ('' for empty)."""
    return table.iloc[:, index].astype(object).fillna("").to_numpy(dtype=object)


# ------------------------------------------------------------------------------------------ headers

def option_part(header: str, codebook: Codebook) -> tuple[Question, int] | None:
    """`21.题干:选项` → (question, code) for a select_multiple/rank option, else None."""
    norm = normalise_header(header)
    if ":" not in norm:
        return None
    stem, option = norm.rsplit(":", 1)
    qnum, rest = split_qnum(stem)
    key = option_key(option)
    multi = [q for q in codebook.questions if q.type in ("select_multiple", "rank")]
    candidates = [q for q in multi if qnum is not None and q.qnum == qnum]
    candidates = candidates or [q for q in multi if text_key(q.label_zh) == text_key(rest)]
    for q in candidates:
        code = next((c.code for c in q.choices if option_key(c.label_zh) == key), None)
        if code is not None:
            return q, code
    return None


def _blank_target(header: str, codebook: Codebook) -> tuple[str, Question] | None:
    """`…_填空1` → ('other', q) for a question with an "other" option, ('value', q) for a free-text question."""
    stem = FILL_BLANK.sub("", normalise_header(header)).rstrip(":_ ")
    part = option_part(stem, codebook)
    q = part[0] if part is not None else None
    if q is None:
        found = [m for m in match_headers([stem], codebook, required=False) if m.question is not None]
        q = found[0].question if found else None
    if q is None:
        return None
    if q.other_choice is not None:
        return "other", q
    return ("value", q) if q.type in ("text", "integer", "decimal", "date") else None


def tencent_matches(headers: list[str], codebook: Codebook):
    """(matches, other columns {`<name>_other`: column index}, platform columns seen)."""
    fixed: dict[int, ColumnMatch] = {}
    blanks: list[int] = []
    for i, header in enumerate(headers):
        key = _key(header)
        if key in META:
            continue
        meta = PLATFORM_COLUMNS.get(key) or ("location" if LOCATION.match(key) else None)
        if meta is not None:
            fixed[i] = ColumnMatch(i, header, META_PART, meta=meta)
        elif FILL_BLANK.search(normalise_header(header)):
            blanks.append(i)
            fixed[i] = ColumnMatch(i, header, UNMATCHED)
        elif (part := option_part(header, codebook)) is not None:
            q, code = part
            if any(m.question is q and m.code == code for m in fixed.values()):  # a repeated header
                fixed[i] = ColumnMatch(i, header, UNMATCHED)
            else:
                fixed[i] = ColumnMatch(i, header, OPTION if q.type == "select_multiple" else ITEM, q, code)
    general = match_headers(["" if i in fixed else h for i, h in enumerate(headers)], codebook, required=False)
    matches = [fixed.get(i, m) for i, m in enumerate(general)]
    others: dict[str, int] = {}
    present = {m.question.name for m in matches if m.question is not None}
    for i in blanks:
        target = _blank_target(headers[i], codebook)
        if target is None:
            continue
        kind, q = target
        if kind == "other" and q.other_column not in others:
            others[q.other_column] = i
        elif kind == "value" and q.name not in present:  # a multi-blank fill-in: its first blank
            present.add(q.name)
            matches[i] = ColumnMatch(i, headers[i], VALUE, q)
    seen = [m.header for m in matches if m.kind == META_PART and m.meta in PLATFORM_METAS]
    return matches, others, seen


# ------------------------------------------------------------------------------------------ reader

def read_tencent_table(table: pd.DataFrame, path: Path, codebook: Codebook, root=None):
    headers = [str(h) for h in table.columns]
    # no header check here: platform.txt may force this reader on a file detection did not recognise
    matches, other_cols, platform_seen = tencent_matches(headers, codebook)
    table = table.copy()
    if any(table.iloc[:, j].astype(object).fillna("").str.contains("\t", regex=False).any()
           for j in range(table.shape[1])):
        for j in range(table.shape[1]):  # xlsx cells keep the tabs read_table strips from CSV
            table.isetitem(j, table.iloc[:, j].astype(object).fillna("").str.strip("\t"))
    for m in matches:
        if m.kind == OPTION:  # non-empty = chosen; markers stay for the coded reader
            text = column_text(table, m.index)
            stripped = pd.Series(text).str.strip()
            chosen = ~stripped.isin(NOT_CHOSEN).to_numpy()
            marker = stripped.isin(NOT_CHOSEN[3:]).to_numpy()
            table.isetitem(m.index, np.where(chosen, "1", np.where(marker, stripped.to_numpy(dtype=object), "")))
    frame, missing, info = read_matched(table, matches, path, codebook, root, mode="text", platform=PLATFORM,
                                        others=other_cols, platform_columns=platform_seen)
    _fix_duration(frame, table, matches)
    return frame, missing, info


def _fix_duration(frame: pd.DataFrame, table: pd.DataFrame, matches: list[ColumnMatch]) -> None:
    """答题时长 as `00:02:16`, or absent: fall back to a clock time, then to 结束 − 开始."""
    meta: dict[str, int] = {}
    for m in matches:
        if m.kind == META_PART:
            meta.setdefault(m.meta, m.index)
    bad = frame["duration_s"].isna().to_numpy()
    if not bad.any():
        return
    if "duration" in meta:
        text = pd.Series(column_text(table, meta["duration"]))
        clock = pd.to_timedelta(text.where(text.str.fullmatch(r"\d+:\d{1,2}:\d{1,2}"), None), errors="coerce")
        frame.loc[bad, "duration_s"] = clock.dt.total_seconds().to_numpy()[bad]
        bad = frame["duration_s"].isna().to_numpy()
    if bad.any() and "started_at" in meta:
        start = parse_times(column_text(table, meta["started_at"]))
        seconds = (frame["submitted_at"].to_numpy() - start) / np.timedelta64(1, "s")
        frame.loc[bad, "duration_s"] = seconds[bad]
