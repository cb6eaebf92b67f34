"""Write a RawResponses-shaped frame exactly as a 问卷星 (wjx.cn) download looks.

Layout (see /work/shared/research/export-formats.md): metadata `序号, 提交答卷时间, 所用时间, 来源, 来源详情, 来自IP`,
then one header `N、题干` per question. 按文本 (mode="text") writes option text, multi-selects joined by `┋`,
"other" as `其他〖写的内容〗`, rankings as `A→B→C`, `(跳过)` for skipped-by-logic and `(空)` for blank.
按序号 (mode="coded") writes option numbers, one 0/1 column `N(选项)` per multi-select option, one rank
position column `N(项目)` per ranking item (`-2` unranked), `-3` for skipped, no "other" text.
Matrix rows: the first row's header is `N、题干—行1`, the others `N、行2` (the reader also accepts `行2` and
`N、题干—行2`). A missing answer is written as skipped when the question's `relevant` is false for the row
and as blank otherwise. The same input always gives the same bytes.
"""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook, Question
from pipelines.ingest.headers import MATRIX_SEP, MULTI_SEP, OTHER_CLOSE, OTHER_OPEN, RANK_SEP

META_HEADERS = ["序号", "提交答卷时间", "所用时间", "来源", "来源详情", "来自IP"]
SKIP_TEXT, BLANK_TEXT = "(跳过)", "(空)"
SKIP_CODE, UNRANKED_CODE = "-3", "-2"
FIXED_CREATED = dt.datetime(2024, 6, 1, 0, 0, 0)
MODE_WORDS = {"text": "按文本", "coded": "按序号", "score": "按分数"}


def wjx_filename(form_id_number: int | str, mode: str, title: str, n: int, fmt: str = "xlsx") -> str:
    """`331954276_按文本_家长问卷_469_469.xlsx` (`按序号` for coded)."""
    return f"{form_id_number}_{MODE_WORDS[mode]}_{title}_{n}_{n}.{fmt}"


def wjx_table(frame: pd.DataFrame, codebook: Codebook, mode: str = "text") -> tuple[list[str], list[np.ndarray]]:
    """The download's header row and its columns (object arrays of str; 序号 as int)."""
    if mode not in ("text", "coded"):
        raise ValueError(f"mode must be 'text' or 'coded', not {mode!r}")
    frame = frame.reset_index(drop=True)
    headers, cols = list(META_HEADERS), _meta(frame)
    shown_cache: dict[str, np.ndarray] = {}
    first_row: set[str] = set()
    for q in codebook.questions:
        if q.relevant is None:
            shown = np.ones(len(frame), dtype=bool)
        else:
            if q.relevant.expr not in shown_cache:
                shown_cache[q.relevant.expr] = q.relevant.applies(frame).to_numpy(dtype=bool)
            shown = shown_cache[q.relevant.expr]
        prefix = f"{q.qnum}、" if q.qnum is not None else ""
        if q.matrix is not None:
            stem = codebook.matrices[q.matrix].label_zh
            label = f"{stem}{MATRIX_SEP}{q.label_zh}" if q.matrix not in first_row else q.label_zh
            first_row.add(q.matrix)
        else:
            label = q.label_zh
        if q.type == "select_multiple":
            _multi(q, frame, shown, mode, prefix, label, headers, cols)
        elif q.type == "rank":
            _rank(q, frame, shown, mode, prefix, label, headers, cols)
        else:
            headers.append(prefix + label)
            cols.append(_single(q, frame, shown, mode) if q.type == "select_one" else _free(q, frame, shown, mode))
    return headers, cols


def write_wjx(frame: pd.DataFrame, codebook: Codebook, path: str | Path, mode: str = "text", fmt: str = "xlsx",
              encoding: str = "utf-8-sig") -> Path:
    path = Path(path)
    headers, cols = wjx_table(frame, codebook, mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        with open(path, "w", encoding=encoding, newline="") as fh:
            writer = csv.writer(fh, lineterminator="\r\n")
            writer.writerow(headers)
            writer.writerows(zip(*cols))
    elif fmt == "xlsx":
        _write_xlsx(path, headers, cols)
    else:
        raise ValueError(f"fmt must be 'xlsx' or 'csv', not {fmt!r}")
    return path


def _write_xlsx(path: Path, headers: list[str], cols: list[np.ndarray]) -> None:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False,
                                            "strings_to_formulas": False, "strings_to_urls": False})
    book.set_properties({"created": FIXED_CREATED, "author": "", "title": ""})
    sheet = book.add_worksheet("Sheet1")
    for j, h in enumerate(headers):
        sheet.write_string(0, j, h)
    numbers = cols[0]
    rest = cols[1:]
    for i, row in enumerate(zip(*rest), start=1):
        seq = numbers[i - 1]
        if isinstance(seq, (int, np.integer)):
            sheet.write_number(i, 0, int(seq))
        else:
            sheet.write_string(i, 0, str(seq))
        for j, value in enumerate(row, start=1):
            if value:
                sheet.write_string(i, j, value)
    book.close()


# ------------------------------------------------------------------------------------------ columns

def _filled(n: int, value) -> np.ndarray:
    """np.full(n, value, dtype=object) without its slow object path."""
    out = np.empty(n, dtype=object)
    out[:] = value
    return out


def _strings(values, n: int) -> np.ndarray:
    """Any column → object array of str, "" where missing."""
    out = _filled(n, "")
    if values is None:
        return out
    s = pd.Series(values).reset_index(drop=True)
    if isinstance(s.dtype, pd.StringDtype) or s.dtype == object:
        arr = s.to_numpy(dtype=object, na_value=None)
        mask = pd.notna(arr)
        out[mask] = arr[mask]
        if pd.api.types.infer_dtype(out[mask], skipna=False) not in ("string", "empty"):
            out[mask] = [str(v) for v in out[mask]]
        return out
    mask = s.notna().to_numpy()
    out[mask] = s[mask].astype(str).to_numpy(dtype=object)
    return out


def _meta(frame: pd.DataFrame) -> list[np.ndarray]:
    n = len(frame)
    ids = _strings(frame["platform_id"], n) if "platform_id" in frame else np.arange(1, n + 1).astype(str).astype(object)
    numeric = pd.to_numeric(pd.Series(ids), errors="coerce")
    seq = ids.copy()
    whole = (numeric.notna() & (numeric == numeric.round())).to_numpy()
    seq[whole] = numeric[whole].astype(np.int64).to_numpy().astype(object)
    submitted = _filled(n, "")
    if "submitted_at" in frame:
        when = pd.to_datetime(frame["submitted_at"]).to_numpy(dtype="datetime64[s]")
        known = ~np.isnat(when)
        text = np.datetime_as_string(when[known], unit="s")
        submitted[known] = np.char.replace(np.char.replace(text, "-", "/"), "T", " ").astype(object)
    took = _filled(n, "")
    if "duration_s" in frame:
        secs = pd.to_numeric(frame["duration_s"], errors="coerce").round().to_numpy(dtype=float)
        known = ~np.isnan(secs)
        took[known] = np.char.add(secs[known].astype(np.int64).astype(str), "秒").astype(object)
    channel = _strings(frame.get("channel"), n)
    parts = pd.Series(channel).str.split("/", n=1, expand=True).reindex(columns=[0, 1]).fillna("")
    return [seq, submitted, took, parts[0].to_numpy(dtype=object), parts[1].to_numpy(dtype=object),
            _strings(frame.get("ip"), n)]


def _missing(shown: np.ndarray, mode: str) -> np.ndarray:
    if mode == "text":
        return np.where(shown, BLANK_TEXT, SKIP_TEXT).astype(object)
    return np.where(shown, BLANK_TEXT, SKIP_CODE).astype(object)


def _codes(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(pd.NA, index=frame.index, dtype="Int64")
    col = frame[column]
    if pd.api.types.is_integer_dtype(col.dtype):
        return col.astype("Int64")
    return pd.to_numeric(col, errors="coerce").astype("Int64")


def _lookup(codes: pd.Series, texts: dict[int, str]) -> np.ndarray:
    """Code → text through an index array; codes without a text are written as the number."""
    values = codes.to_numpy(dtype=float, na_value=np.nan)
    known = ~np.isnan(values)
    ints = np.where(known, values, 0).astype(np.int64)
    top = max([0, *texts, int(ints.max(initial=0))])
    lut = np.array([texts.get(i, str(i)) for i in range(top + 1)], dtype=object)
    out = _filled(len(values), "")
    inside = known & (ints >= 0)
    out[inside] = lut[ints[inside]]
    out[known & (ints < 0)] = ints[known & (ints < 0)].astype(str).astype(object)
    return out


def _with_other(texts: np.ndarray, is_other: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Append `〖text〗` where the other option is chosen and its text is known."""
    mark = is_other
    out = texts.copy()
    out[mark] = out[mark] + OTHER_OPEN + other[mark] + OTHER_CLOSE
    return out


def _other_text(frame: pd.DataFrame, q: Question) -> tuple[np.ndarray, np.ndarray]:
    """(text, known) of the `<name>_other` column; known is False where it is missing."""
    n = len(frame)
    if q.other_column not in frame:
        return _filled(n, ""), np.zeros(n, dtype=bool)
    s = frame[q.other_column]
    return _strings(s, n), s.notna().to_numpy()


def _single(q: Question, frame: pd.DataFrame, shown: np.ndarray, mode: str) -> np.ndarray:
    codes = _codes(frame, q.name)
    na = codes.isna().to_numpy()
    texts = {c.code: (c.label_zh if mode == "text" else str(c.code)) for c in q.choices}
    out = _lookup(codes, texts)
    oc = q.other_choice
    if mode == "text" and oc is not None:
        other, known = _other_text(frame, q)
        out = _with_other(out, (codes == oc.code).fillna(False).to_numpy() & known, other)
    out[na] = _missing(shown, mode)[na]
    return out


def _free(q: Question, frame: pd.DataFrame, shown: np.ndarray, mode: str) -> np.ndarray:
    out = _strings(frame.get(q.name), len(frame))
    empty = out == ""
    out[empty] = _missing(shown, mode)[empty]
    return out


def _option_matrix(q: Question, frame: pd.DataFrame) -> np.ndarray:
    """(n, k) float array of the per-option columns (NaN = <NA>)."""
    return np.column_stack([_codes(frame, q.option_column(c)).to_numpy(dtype=float, na_value=np.nan)
                            for c in q.codes]) if q.codes else np.zeros((len(frame), 0))


def _multi(q, frame, shown, mode, prefix, label, headers, cols) -> None:
    n = len(frame)
    values = _option_matrix(q, frame)
    answered = (~np.isnan(values)).any(axis=1)
    chosen = values == 1
    if mode == "coded":
        fill = np.where(shown, "0", SKIP_CODE).astype(object)
        for j, c in enumerate(q.choices):
            headers.append(f"{q.qnum if q.qnum is not None else label}({c.label_zh})")
            cols.append(np.where(answered, np.where(chosen[:, j], "1", "0"), fill).astype(object))
        return
    other, known = _other_text(frame, q) if q.other_choice is not None else (None, None)
    joined, started = _filled(n, ""), np.zeros(n, dtype=bool)
    for j, c in enumerate(q.choices):
        piece = _filled(n, c.label_zh)
        if c.other:
            piece = _with_other(piece, known, other)
        on = chosen[:, j]
        first, later = on & ~started, on & started
        joined[first] = piece[first]
        joined[later] = joined[later] + MULTI_SEP + piece[later]
        started |= on
    joined[~chosen.any(axis=1)] = _missing(shown, mode)[~chosen.any(axis=1)]
    headers.append(prefix + label)
    cols.append(joined)


def _rank(q, frame, shown, mode, prefix, label, headers, cols) -> None:
    n = len(frame)
    values = _option_matrix(q, frame)
    answered = (~np.isnan(values)).any(axis=1)
    if mode == "coded":
        fill = np.where(shown, UNRANKED_CODE, SKIP_CODE).astype(object)
        for j, c in enumerate(q.choices):
            headers.append(f"{q.qnum if q.qnum is not None else label}({c.label_zh})")
            col = values[:, j]
            text = _filled(n, UNRANKED_CODE)
            ranked = ~np.isnan(col)
            text[ranked] = col[ranked].astype(np.int64).astype(str).astype(object)
            cols.append(np.where(answered, text, fill).astype(object))
        return
    joined = _filled(n, "")
    labels = np.array([c.label_zh for c in q.choices], dtype=object)
    for position in range(1, len(q.choices) + 1):
        at = values == position
        has = at.any(axis=1)
        item = labels[at.argmax(axis=1)] if len(labels) else joined
        joined = np.where(has, np.where(joined == "", item, joined + RANK_SEP + item), joined)
    joined[~answered] = _missing(shown, mode)[~answered]
    headers.append(prefix + label)
    cols.append(joined)
