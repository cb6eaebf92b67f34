"""问卷星 SPSS downloads (.sav) → RawResponses (docs/architecture.md).

The .sav holds the 按序号 codes (option numbers, 0/1 per multi-select option, rank positions, `-3` skipped,
`-2` unranked) with value labels, and each variable's label carries the question text. Variables are tied to
questions in this order:

1. metadata by variable name or label: `序号`/`seq`/`id`, `提交答卷时间`/`submittime`/`submitdate`,
   `所用时间`/`totalseconds` (a string such as `136` or `136秒`), `来源`/`source`, `来源详情`/`sourcedetail`,
   `来自IP`/`ip`;
2. "please specify" / fill-in variables by name: `Q25_Blank1`, `Q25_12_Blank`, `Q2_Other`, `Q2_Open`, `Q2_Text`
   → `<name>_other` (a question with an "other" option) or the answer of a free-text question;
3. the variable **label** through `match_headers`, exactly like a 问卷星 header (`5、题干`, `5(选项)`, `题干—行`);
4. otherwise the variable **name**: `Q5` (question 5), `Q5_3` (option 3 of a multi-select/ranking question 5, or
   row 3 of matrix 5), `Q6_Row2` / `Q6_R2` (row 2 of matrix 6).

A select_one variable whose value labels all name codebook options is recoded through its labels (so a .sav
whose numbering differs from the codebook still maps by meaning); otherwise its numbers are the codes. User
missing values are kept as values (`-3` stays "skipped"). The codes then go through the 问卷星 coded reader.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from pipelines.codebook import Codebook, Question
from pipelines.errors import InputError
from pipelines.ingest.headers import (ITEM, META, META_PART, OPTION, ROW, UNMATCHED, VALUE, ColumnMatch,
                                      match_headers, option_key)
from pipelines.ingest.tables import _cells_to_text, per_unique
from pipelines.ingest.tencent import read_matched

PLATFORM = "wjx"
SAV_META = {"seq": "platform_id", "id": "platform_id", "submittime": "submitted_at", "submitdate": "submitted_at",
            "totalseconds": "duration", "source": "source", "sourcedetail": "source_detail", "ip": "ip",
            "userid": "user_id", "totalscore": "total_score"}
NAME = re.compile(r"^Q(\d+)(?:_(?:(\d+)|R(?:ow)?(\d+)))?$", re.IGNORECASE)
FILL = re.compile(r"^Q(\d+)(?:_(\d+))?_(?:Blank|Open|Other|Text)\d*$", re.IGNORECASE)
FREE = ("text", "integer", "decimal", "date")


def read_sav(path: str | Path, codebook: Codebook, root=None):
    """(frame, missing, info) for one 问卷星 SPSS download."""
    import pyreadstat

    path = Path(path)
    try:
        data, meta = pyreadstat.read_sav(str(path), user_missing=True, apply_value_formats=False)
    except Exception as exc:  # pyreadstat raises its own error types for damaged / non-SPSS files
        raise InputError(path, f"cannot be read as an SPSS .sav file ({str(exc)[:160]})",
                         "download the SPSS file from 问卷星 again, or use the Excel download instead") from None
    names = list(meta.column_names)
    labels = [str(meta.column_names_to_labels.get(v) or "") for v in names]
    value_labels = meta.variable_value_labels or {}
    table = pd.DataFrame({i: _as_text(data[v]) for i, v in enumerate(names)})
    table.index = pd.RangeIndex(1, len(table) + 1)
    matches, others = sav_matches(names, labels, codebook)
    for m in matches:
        if m.kind in (VALUE, ROW) and m.question.type == "select_one" and names[m.index] in value_labels:
            _recode(table, m.index, m.question, value_labels[names[m.index]])
    return read_matched(table, matches, path, codebook, root, mode="coded", platform=PLATFORM, others=others,
                        format="sav", variables=dict(zip(names, labels)))


def _as_text(col: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(col):
        return col.dt.strftime("%Y-%m-%d %H:%M:%S").fillna("").astype(object)
    return _cells_to_text(col.astype(object).where(col.notna(), None))


def _meta_name(name: str, label: str) -> str | None:
    for text in (label, name):
        key = re.sub(r"\s+", "", str(text)).casefold()
        found = META.get(key) or SAV_META.get(key)
        if found is not None:
            return found
    return None


def _by_name(name: str, book: Codebook) -> tuple[str, Question, int | None] | None:
    """`Q5` / `Q5_3` / `Q6_Row2` → (kind, question, code) through the codebook's question numbers."""
    m = NAME.match(name)
    if not m:
        return None
    qs = book.qnums.get(int(m.group(1)), ())
    sub, row = m.group(2), m.group(3)
    matrix = [q for q in qs if q.matrix is not None]
    if row is not None or (sub is not None and matrix):
        k = int(row or sub)
        return (ROW, matrix[k - 1], None) if 1 <= k <= len(matrix) else None
    if sub is not None:
        q = next((q for q in qs if q.type in ("select_multiple", "rank")), None)
        if q is None or int(sub) not in q.codes:
            return None
        return (OPTION if q.type == "select_multiple" else ITEM), q, int(sub)
    return (VALUE, qs[0], None) if len(qs) == 1 else None


def sav_matches(names: list[str], labels: list[str], book: Codebook):
    """(matches, {`<name>_other`: variable index}) — see the module docstring for the order."""
    fixed: dict[int, ColumnMatch] = {}
    others: dict[str, int] = {}
    fills: list[tuple[int, Question]] = []
    for i, (name, label) in enumerate(zip(names, labels)):
        meta = _meta_name(name, label)
        fill = FILL.match(name)
        if meta is not None:
            fixed[i] = ColumnMatch(i, name, META_PART, meta=meta)
        elif fill:
            fixed[i] = ColumnMatch(i, name, UNMATCHED)
            qs = [q for q in book.qnums.get(int(fill.group(1)), ()) if q.matrix is None]
            q = next((q for q in qs if q.other_choice is not None), None)
            if q is not None:
                others.setdefault(q.other_column, i)
            elif len(qs) == 1 and qs[0].type in FREE:
                fills.append((i, qs[0]))
    by_label = match_headers(["" if i in fixed else label for i, label in enumerate(labels)], book, required=False)
    matches = [fixed.get(i, m) for i, m in enumerate(by_label)]
    taken = {(m.question.name, m.code) for m in matches if m.question is not None}
    for i, m in enumerate(matches):
        if m.kind != UNMATCHED or i in fixed:
            continue
        hit = _by_name(names[i], book)
        if hit is not None and (hit[1].name, hit[2]) not in taken:
            taken.add((hit[1].name, hit[2]))
            matches[i] = ColumnMatch(i, names[i], hit[0], hit[1], hit[2])
    for i, q in fills:  # a fill-in blank answers a free-text question that has no variable of its own
        if (q.name, None) not in taken:
            taken.add((q.name, None))
            matches[i] = ColumnMatch(i, names[i], VALUE, q)
    return [ColumnMatch(m.index, names[m.index], m.kind, m.question, m.code, m.meta) for m in matches], others


def _recode(table: pd.DataFrame, index: int, q: Question, labels: dict) -> None:
    """Numbers → codebook codes through the value labels, when every labelled answer names an option."""
    by_text = {option_key(c.label_zh): c.code for c in q.choices}
    mapping: dict[str, str] = {}
    for value, label in labels.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            return
        if number < 0:  # -3 skipped / -2 unranked markers keep their meaning
            continue
        code = by_text.get(option_key(label))
        if code is None:
            return
        mapping[str(int(number)) if number.is_integer() else str(number)] = str(code)
    if not mapping or all(k == v for k, v in mapping.items()):
        return
    table.isetitem(index, pd.Series(per_unique(table.iloc[:, index], lambda u: mapping.get(u, u)),
                                    index=table.index))
