"""KoboToolbox / ODK (XLSForm) downloads → RawResponses (docs/architecture.md).

The codebook is an XLSForm, so a Kobo form built from it uses the codebook's `name`s and choice names (= our
integer codes). Exports (/work/shared/research/export-formats.md): CSV `;`-separated with every field quoted,
or xlsx; headers are XML names or labels, groups as `group/question` (a matrix is a `table-list` group);
`select_one` cells hold a choice name or its label; a `select_multiple` gives a space-separated summary column
plus one `question/option` column of `1`/`0` per option (all empty when unanswered) — the option columns are
used when present, else the summary column is split; "please specify" is the text question `<name>_other`;
a `rank` answer is assumed to be the ODK value, the ranked choice names in order, space-separated.
Metadata: `start`, `end` (ISO with offset), `_id` (→ platform_id), `_uuid`, `_submission_time` (UTC, no
offset), `_validation_status`, `_index`. `submitted_at` is `_submission_time` moved to the respondent's
local clock (the offset of `end`), else `end`; `duration_s` = end − start. Kobo has no skip marker: an empty
cell is `blank` (cleaning tells skipped from blank with `relevant`). Repeat groups (other sheets of the
workbook) are ignored with a warning in info.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook, Question
from pipelines.errors import InputError
from pipelines.ingest.headers import (ITEM, META_PART, OPTION, ROW, UNMATCHED, VALUE, ColumnMatch, match_headers,
                                      option_key, text_key)
from pipelines.ingest.tables import factorize
from pipelines.ingest.tencent import column_text, read_matched

PLATFORM = "kobo"
KOBO_MARKS = {"_uuid", "_submission_time", "_index", "_validation_status"}
KOBO_META = {"_id": "platform_id", "start": "started_at", "end": "ended_at", "_submission_time": "submitted_at",
             "_uuid": "uuid", "_validation_status": "validation", "_index": "index", "_parent_index": "index",
             "today": "today", "deviceid": "device", "username": "user_id", "phonenumber": "user_phone",
             "simserial": "device", "subscriberid": "device", "_submitted_by": "user_id", "_status": "status",
             "_notes": "notes", "_tags": "tags", "__version__": "version", "_version_": "version",
             "instanceid": "uuid", "meta/instanceid": "uuid", "formhub/uuid": "uuid", "audit": "audit"}
OTHER = "other"


def looks_like_kobo(headers) -> bool:
    names = {str(h).strip() for h in headers}
    return "_id" in names and bool(names & KOBO_MARKS)


# ------------------------------------------------------------------------------------------ headers

def _targets(book: Codebook) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """(by XML name path, by label text key) → (kind, question, code)."""
    names: dict[str, tuple] = {}
    labels: dict[str, list[tuple]] = {}
    for q in book.questions:
        kind = ROW if q.matrix else VALUE
        names[q.name] = (kind, q, None)
        labels.setdefault(text_key(q.label_zh), []).append((kind, q, None))
        if q.matrix:
            stem = book.matrices[q.matrix].label_zh
            labels.setdefault(text_key(f"{stem}/{q.label_zh}"), []).append((kind, q, None))
        if q.type in ("select_multiple", "rank"):
            part = OPTION if q.type == "select_multiple" else ITEM
            for c in q.choices:
                names[f"{q.name}/{c.code}"] = (part, q, c.code)
                labels.setdefault(text_key(f"{q.label_zh}/{c.label_zh}"), []).append((part, q, c.code))
        if q.other_choice is not None:
            names[q.other_column] = (OTHER, q, None)
    return names, {k: v[0] for k, v in labels.items() if len(v) == 1}


def kobo_matches(headers: list[str], book: Codebook) -> tuple[list[ColumnMatch], dict[str, int]]:
    """One ColumnMatch per header (names, then labels, then 问卷星-style fuzzy text); `<name>_other` columns."""
    names, labels = _targets(book)
    matches: list[ColumnMatch] = []
    others: dict[str, int] = {}
    taken: set[tuple[str, int | None]] = set()
    for i, header in enumerate(headers):
        header = str(header).strip()
        meta = KOBO_META.get(header.casefold()) if header not in names else None
        if meta is not None or header.startswith("_"):
            matches.append(ColumnMatch(i, header, META_PART, meta=meta or "platform"))
            continue
        parts = header.split("/")
        hit = None
        for j in range(len(parts)):  # the longest suffix that names something: groups are prefixes
            suffix = "/".join(parts[j:])
            hit = names.get(suffix) or labels.get(text_key(suffix))
            if hit is not None:
                break
        if hit is not None and hit[0] == OTHER:
            others.setdefault(hit[1].other_column, i)
            matches.append(ColumnMatch(i, header, UNMATCHED))
        elif hit is not None and (hit[1].name, hit[2]) not in taken:
            taken.add((hit[1].name, hit[2]))
            matches.append(ColumnMatch(i, header, hit[0], hit[1], hit[2]))
        else:
            matches.append(ColumnMatch(i, header, UNMATCHED))
    loose = [i for i, m in enumerate(matches) if m.kind == UNMATCHED and headers[i] and i not in others.values()]
    if loose:  # labels edited slightly since the form was built: the 问卷星 text matcher, questions only
        found = match_headers([str(headers[i]).split("/")[-1] for i in loose], book, required=False)
        for i, m in zip(loose, found):
            if m.question is not None and m.kind in (VALUE, ROW) and (m.question.name, None) not in taken:
                taken.add((m.question.name, None))
                matches[i] = ColumnMatch(i, headers[i], m.kind, m.question)
    return matches, others


# ------------------------------------------------------------------------------------------ values

def _code_of(q: Question, token: str, path: Path, header: str) -> int:
    token = token.strip()
    if token.lstrip("-").isdigit() and int(token) in q.codes:
        return int(token)
    code = next((c.code for c in q.choices if option_key(c.label_zh) == option_key(token)), None)
    if code is None:
        raise InputError(path, f"column “{header}”: “{token}” is not a choice of '{q.name}' ({q.label_zh})",
                         "renamed choice? update the codebook's choices sheet, or check that this file belongs "
                         "to this questionnaire")
    return code


def _positions(q: Question, text: np.ndarray, path: Path, header: str) -> np.ndarray:
    """(n, k) position (1-based) of each choice in a space-separated list, 0 when absent; once per distinct value."""
    take, uniques = factorize(pd.Series(text))
    width = len(q.codes)
    out = np.zeros((len(uniques) + 1, width), np.int64)
    pos = {c: i for i, c in enumerate(q.codes)}
    labels = {option_key(c.label_zh): c.code for c in q.choices}
    for j, u in enumerate(uniques):
        whole = labels.get(option_key(u))  # one label that itself contains spaces
        tokens = [str(whole)] if whole is not None else u.split()
        for p, token in enumerate(tokens, start=1):
            out[j, pos[_code_of(q, token, path, header)]] = p
    return out[take]


def _expand(table: pd.DataFrame, matches: list[ColumnMatch], path: Path) -> tuple[pd.DataFrame, list[ColumnMatch]]:
    """A select_multiple summary column without option columns, or a rank column → one column per choice."""
    has_parts = {m.question.name for m in matches if m.kind in (OPTION, ITEM)}
    extra: dict[int, np.ndarray] = {}
    out = list(matches)
    width = table.shape[1]
    for m in matches:
        q = m.question
        if m.kind != VALUE or q.type not in ("select_multiple", "rank") or q.name in has_parts:
            continue
        text = column_text(table, m.index)
        empty = pd.Series(text).str.strip().eq("").to_numpy()
        positions = _positions(q, np.where(empty, "", text), path, m.header)
        for i, code in enumerate(q.codes):
            values = positions[:, i] if q.type == "rank" else (positions[:, i] > 0).astype(np.int64)
            cells = np.where(empty, "", np.where(values > 0, values.astype(str), "0" if q.type != "rank" else ""))
            extra[width + len(extra)] = cells.astype(object)
            out.append(ColumnMatch(width + len(extra) - 1, f"{m.header}/{code}",
                                   OPTION if q.type == "select_multiple" else ITEM, q, code))
    if not extra:
        return table, out
    added = pd.DataFrame(extra, index=table.index)
    table = pd.concat([table.set_axis(range(width), axis=1), added], axis=1)
    return table, out


# ------------------------------------------------------------------------------------------ metadata

def _local_times(text: np.ndarray) -> tuple[pd.Series, pd.Series]:
    """ISO times → (UTC instants, the offset each was written with in minutes; NaN when naive)."""
    s = pd.Series(text, dtype=object).fillna("").astype(str).str.strip()
    utc = pd.to_datetime(s.where(s.ne(""), None), utc=True, format="ISO8601", errors="coerce")
    parts = s.str.extract(r"(?:([+-])(\d{2}):?(\d{2})|(Z))$")
    minutes = parts[1].astype(float) * 60 + parts[2].astype(float)
    minutes = minutes.where(parts[0].ne("-"), -minutes).where(parts[3].isna(), 0.0)
    return utc, minutes


def _kobo_times(table: pd.DataFrame, matches: list[ColumnMatch], n: int) -> dict[str, np.ndarray]:
    meta = {}
    for m in matches:
        if m.kind == META_PART:
            meta.setdefault(m.meta, m.index)
    blank = np.full(n, "", dtype=object)
    start, start_off = _local_times(column_text(table, meta["started_at"]) if "started_at" in meta else blank)
    end, end_off = _local_times(column_text(table, meta["ended_at"]) if "ended_at" in meta else blank)
    sub, sub_off = _local_times(column_text(table, meta["submitted_at"]) if "submitted_at" in meta else blank)
    offset = pd.to_timedelta(end_off.fillna(start_off).fillna(0.0), unit="min")
    # _submission_time is UTC: shown on the respondent's clock (the offset of `end`); `end` is the fallback
    from_sub = sub + pd.to_timedelta(sub_off.fillna(0.0), unit="min").where(sub_off.notna(), offset)
    from_end = end + pd.to_timedelta(end_off.fillna(0.0), unit="min")
    submitted = from_sub.where(sub.notna(), from_end).dt.tz_localize(None).astype("datetime64[ns]").to_numpy()
    duration = ((end - start).dt.total_seconds()).to_numpy(dtype=float)
    return {"submitted_at": submitted, "duration_s": duration}


# ------------------------------------------------------------------------------------------ reader

def _sheet_names(path: Path) -> list[str]:
    if path.suffix.lower() not in (".xlsx", ".xlsm", ".xls", ".ods"):
        return []
    from python_calamine import CalamineWorkbook

    try:
        return list(CalamineWorkbook.from_path(str(path)).sheet_names)
    except Exception:  # read_table already opened it: an unreadable sheet list only loses the warning
        return []


def read_kobo_table(table: pd.DataFrame, path: Path, codebook: Codebook, root=None):
    headers = [str(h) for h in table.columns]
    # no header check here: platform.txt may force this reader on a file detection did not recognise
    matches, other_cols = kobo_matches(headers, codebook)
    table, matches = _expand(table, matches, path)
    warnings = []
    repeats = _sheet_names(path)[1:]
    if repeats:
        warnings.append(f"repeat-group sheet(s) ignored: {', '.join(repeats)}")
    frame, missing, info = read_matched(table, matches, path, codebook, root, mode="coded", platform=PLATFORM,
                                        others=other_cols, **({"warnings": warnings} if warnings else {}))
    for column, values in _kobo_times(table, matches, len(frame)).items():
        frame[column] = values
    return frame, missing, info
