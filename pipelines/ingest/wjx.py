"""问卷星 (wjx.cn) downloads → RawResponses (docs/architecture.md).

Handles 按文本 (option text), 按序号 (option numbers) and 按分数 (scores) downloads, .xlsx/.xls/.csv; the
mode comes from the file name or else from the content. Every column is converted column-wise: a column's
distinct values are parsed once (`pd.factorize`) and the result is taken back to all rows, so a million rows
cost a few array operations per column. Free-text answers (integer/decimal/text/date questions) are kept
as typed; `(跳过)`/`（跳过）` (and `-3` in coded downloads) mean skipped by logic, `(空)` or an empty cell mean
blank, `-2` an unranked item; each such cell is recorded in the `missing` frame
(source_file, source_row, column, reason).
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook, Question
from pipelines.errors import InputError
from pipelines.ingest.headers import (ITEM, META_PART, OPTION, RANK_SEP, ROW, UNMATCHED, VALUE, ColumnMatch,
                                      absent_questions, match_headers, normalise_header, option_key, split_multi,
                                      split_other)
from pipelines.ingest.tables import (column_values, const_strings, empty_column, factorize, filled, isin_each,
                                     parse_duration, parse_times, per_unique, raw_columns, read_table, relative,
                                     strings)

PLATFORM = "wjx"
WJX_META = {"序号", "所用时间", "来源", "来源详情", "来自IP"}  # with 提交答卷时间, in any version/order
SKIPPED, BLANK, NOT_RANKED = 1, 2, 3
REASONS = {SKIPPED: "skipped", BLANK: "blank", NOT_RANKED: "not_ranked"}
SKIP_TEXTS = {"(跳过)"}
BLANK_TEXTS = {"(空)", ""}
RAW_SKIP = ["(跳过)", "（跳过）", " (跳过)", "(跳过) "]
RAW_BLANK = ["", "(空)", "（空）", " ", "(空) ", " (空)"]
MODE_WORDS = {"按文本": "text", "按序号": "coded", "按分数": "score"}


def looks_like_wjx(headers) -> bool:
    names = {normalise_header(h).replace(" ", "") for h in headers}
    return "提交答卷时间" in names and len(names & WJX_META) >= 2


def read_wjx(path: str | Path, codebook: Codebook, root: str | Path | None = None):
    """(frame, missing, info) for one 问卷星 download; see the module docstring."""
    path = Path(path)
    return read_wjx_table(read_table(path), path, codebook, root)


def read_wjx_table(table: pd.DataFrame, path: Path, codebook: Codebook, root=None):
    headers = [str(h) for h in table.columns]
    if not looks_like_wjx(headers):
        raise InputError(path, "is not a 问卷星 download (no 提交答卷时间/序号/所用时间 columns)",
                         "download the answers from 问卷星 → 分析&下载 → 下载答卷数据")
    matches = match_headers(headers, codebook, path=path)
    check_repeated_columns(table, matches, path)
    mode = detect_mode(path, table, matches)
    reader = _Reader(table, path, codebook, mode, relative(path, root))
    frame = reader.run(matches)
    info = {"platform": PLATFORM, "mode": mode, "rows": len(frame),
            "matched": [m.header for m in matches if m.kind not in (UNMATCHED,)],
            "unmatched": [m.header for m in matches if m.kind == UNMATCHED],
            "absent": absent_questions(matches, codebook), **reader.notes}
    return frame, reader.missing_frame(), info


def check_repeated_columns(table: pd.DataFrame, matches: list[ColumnMatch], path: Path) -> None:
    """A header repeated (a column copied in Excel) is harmless when both columns hold the same answers — the
    first is read, the copy listed as unmatched — and an InputError when they differ: which is right is unknowable."""
    first: dict[str, ColumnMatch] = {}
    for m in matches:
        if m.kind != UNMATCHED and m.kind != META_PART:
            first.setdefault(normalise_header(m.header), m)
    for m in matches:
        original = first.get(normalise_header(m.header)) if m.kind == UNMATCHED else None
        if original is None:
            continue
        a, b = table.iloc[:, original.index], table.iloc[:, m.index]
        differ = (a.to_numpy(dtype=object) != b.to_numpy(dtype=object))
        if differ.any():
            row = int(np.asarray(table.index)[np.argmax(differ)])
            raise InputError(path, f"the column “{m.header}” appears twice (columns {original.index + 1} and "
                                   f"{m.index + 1}) with different answers, e.g. in {row_text(table, row)}",
                             "delete one of the two columns, or download the export again")


def row_text(table: pd.DataFrame, row: int) -> str:
    """`row 4 (line 5 of the file)`: the response's data row and where a spreadsheet shows it."""
    return f"row {row} (line {row + int(table.attrs.get('header_row', 1))} of the file)"


def detect_mode(path: Path, table: pd.DataFrame, matches: list[ColumnMatch]) -> str:
    """`按文本`/`按序号`/`按分数` (or old `…_0.xls`/`…_2.xls`) in the name; else per-option columns or numbers."""
    name = Path(path).name
    for word, mode in MODE_WORDS.items():
        if word in name:
            return mode
    old = re.search(r"_(\d)\.\w+$", name)
    if old and re.match(r"^\d+_\d+_\d\.", name) and old.group(1) in ("0", "2"):
        return "text" if old.group(1) == "0" else "coded"
    if any(m.kind in (OPTION, ITEM) for m in matches):
        return "coded"
    numeric = text = 0
    for m in matches:
        if m.kind in (VALUE, ROW) and m.question.type == "select_one":
            sample = table.iloc[:200, m.index]
            sample = sample[~sample.isin(RAW_SKIP + RAW_BLANK)]
            is_num = sample.str.fullmatch(r"-?\d+").fillna(False).to_numpy(dtype=bool)
            numeric += int(is_num.sum())
            text += int((~is_num).sum())
    return "coded" if numeric > text else "text"


class _Unknown(Exception):
    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


def _as_int(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


class _Reader:
    def __init__(self, table: pd.DataFrame, path: Path, book: Codebook, mode: str, source: str):
        self.table, self.path, self.book, self.mode, self.source = table, path, book, mode, source
        self.n = len(table)
        self.rows = np.asarray(table.index, dtype=np.int64)
        self.values = column_values(table)  # the cells by column position, converted once
        self.cols: dict[str, object] = {}
        self.reasons: list[tuple[np.ndarray, str, int]] = []
        self.notes: dict[str, object] = {}
        self.labels: dict[str, dict[str, int]] = {}
        self.skip = SKIP_TEXTS | {"-3"}  # choice columns; free text keeps a typed "-3" in 按文本 downloads

    # ---------------------------------------------------------------- helpers
    def col(self, m: ColumnMatch):
        """The column's cells (an object array of str for a text column)."""
        return self.values[m.index]

    def note(self, rows: np.ndarray, column: str, reason: int) -> None:
        if rows.any():
            self.reasons.append((self.rows[rows], column, reason))

    def marker(self, text: str) -> int:
        key = unicodedata.normalize("NFKC", text).strip()
        return SKIPPED if key in self.skip else BLANK if key in BLANK_TEXTS else 0

    def fail(self, q: Question, text: str, what: str = "is not one of its options", row=None) -> InputError:
        num = f"第{q.qnum}题" if q.qnum is not None else "question"
        where = f"{row_text(self.table, int(row))}, " if row is not None else ""
        return InputError(self.path, f"{where}{num} '{q.name}' ({q.label_zh}): answer “{text}” {what}",
                          "renamed option? update the option in the codebook's choices sheet, or check that "
                          "this file belongs to this questionnaire")

    def choice_code(self, q: Question, text: str, other: str | None) -> int:
        labels = self.labels.get(q.name)
        if labels is None:
            labels = self.labels[q.name] = {option_key(c.label_zh): c.code for c in q.choices}
        code = labels.get(option_key(text))
        if code is None and other is not None and q.other_choice is not None:
            code = q.other_choice.code
        if code is None and self.mode != "text":
            code = self.number_code(q, text)
        if code is None:
            raise _Unknown(text if other is None else f"{text}〖{other}〗")
        return code

    def unknown(self, q: Question, exc: "_Unknown", take: np.ndarray, j: int) -> InputError:
        return self.fail(q, exc.text, row=self.rows[np.argmax(take == j)])

    def number_code(self, q: Question, text: str) -> int | None:
        value = _as_int(text.strip())
        if value is None:
            return None
        if self.mode == "score":
            by_score = {}
            for c in q.choices:
                by_score.setdefault(c.score, []).append(c.code)
            codes = by_score.get(float(value), [])
            return codes[0] if len(codes) == 1 else (value if value in q.codes else None)
        return value if value in q.codes else None

    # ---------------------------------------------------------------- run
    def run(self, matches: list[ColumnMatch]) -> pd.DataFrame:
        by_q: dict[str, list[ColumnMatch]] = {}
        meta: dict[str, ColumnMatch] = {}
        for m in matches:
            if m.kind == META_PART:
                meta.setdefault(m.meta, m)
            elif m.question is not None:
                by_q.setdefault(m.question.name, []).append(m)
        out: dict[str, object] = {"source_file": const_strings(self.source, self.n), "source_row": self.rows}
        out.update(self.metadata(meta))
        dtypes = raw_columns(self.book)
        for q in self.book.questions:
            ms = by_q.get(q.name, [])
            whole = [m for m in ms if m.kind in (VALUE, ROW)]
            parts = [m for m in ms if m.kind in (OPTION, ITEM)]
            if q.type == "select_multiple" and (parts or whole):
                self.multi_parts(q, parts) if parts else self.multi_text(q, self.col(whole[0]))
            elif q.type == "rank" and (parts or whole):
                self.rank_parts(q, parts) if parts else self.rank_text(q, self.col(whole[0]))
            elif q.type == "select_one" and whole:
                self.single(q, self.col(whole[0]))
            elif whole:
                self.free(q, self.col(whole[0]))
        for column, dtype in dtypes.items():
            out[column] = self.cols[column] if column in self.cols else empty_column(dtype, self.n)
        return pd.DataFrame(out, index=pd.RangeIndex(self.n), copy=False)

    def missing_frame(self) -> pd.DataFrame:
        """Long frame (source_file, source_row, column, reason), in row order."""
        if not self.reasons:
            return pd.DataFrame({"source_file": pd.Series([], dtype="string"), "source_row": np.array([], np.int64),
                                 "column": pd.Series([], dtype=object), "reason": pd.Series([], dtype=object)})
        rows = np.concatenate([r for r, _, _ in self.reasons])
        sizes = [len(r) for r, _, _ in self.reasons]
        order = np.argsort(rows, kind="stable")
        column = np.repeat(np.array([c for _, c, _ in self.reasons], dtype=object), sizes)[order]
        reason = np.repeat(np.array([REASONS[k] for _, _, k in self.reasons], dtype=object), sizes)[order]
        return pd.DataFrame({"source_file": const_strings(self.source, len(rows)), "source_row": rows[order],
                             "column": column, "reason": reason}, copy=False)

    # ---------------------------------------------------------------- metadata
    def metadata(self, meta: dict[str, ColumnMatch]) -> dict[str, object]:
        n = self.n

        def text(name: str) -> np.ndarray:
            if name not in meta:
                return filled(n, "")
            col = self.table.iloc[:, meta[name].index]
            if isinstance(col.dtype, pd.ArrowDtype) or getattr(col.dtype, "storage", "") == "pyarrow":
                return col.str.strip().to_numpy(dtype=object)  # arrow compute: no per-cell Python
            return per_unique(col, str.strip)

        ids = text("platform_id")
        if "platform_id" not in meta:
            ids = self.rows.astype(str).astype(object)
            self.notes["platform_id"] = "no 序号 column: the row number is used"
        source, detail = text("source"), text("source_detail")
        channel = np.where(detail == "", source, source + "/" + detail)
        return {"platform_id": strings(ids), "submitted_at": parse_times(text("submitted_at")),
                "duration_s": parse_duration(text("duration")), "channel": strings(channel),
                "ip": strings(text("ip"))}

    # ---------------------------------------------------------------- question types
    def single(self, q: Question, col) -> None:
        take, uniques = factorize(col)
        k = len(uniques)
        codes, reason, other = np.zeros(k, np.int64), np.zeros(k, np.int8), filled(k, None)
        for j, u in enumerate(uniques):
            reason[j] = self.marker(u)
            if reason[j]:
                continue
            option, other[j] = split_other(u)
            if self.mode != "text" and other[j] is None:
                codes[j] = self.number_code(q, option) or 0
                if codes[j]:
                    continue
            try:
                codes[j] = self.choice_code(q, option, other[j])
            except _Unknown as exc:
                raise self.unknown(q, exc, take, j) from None
        r = reason[take]
        self.cols[q.name] = pd.arrays.IntegerArray(codes[take], r != 0)
        if q.other_choice is not None:
            texts = other[take]
            self.cols[q.other_column] = pd.arrays.StringArray(texts)
        self.note(r == SKIPPED, q.name, SKIPPED)
        self.note(r == BLANK, q.name, BLANK)

    def free(self, q: Question, col) -> None:
        skip, blank = isin_each(col, RAW_SKIP + (["-3"] if self.mode != "text" else []), RAW_BLANK)
        values = np.array(col, dtype=object)
        values[skip | blank] = None
        self.cols[q.name] = pd.arrays.StringArray(values)
        self.note(skip, q.name, SKIPPED)
        self.note(blank, q.name, BLANK)

    def multi_text(self, q: Question, col) -> None:
        take, uniques = factorize(col)
        k, width = len(uniques), len(q.codes)
        chosen = np.zeros((k, width), np.int64)
        reason, other = np.zeros(k, np.int8), filled(k, None)
        pos = {c: i for i, c in enumerate(q.codes)}
        for j, u in enumerate(uniques):
            reason[j] = self.marker(u)
            if reason[j]:
                continue
            for option, text in split_multi(u):
                try:
                    code = self.choice_code(q, option, text)
                except _Unknown as exc:
                    raise self.unknown(q, exc, take, j) from None
                chosen[j, pos[code]] = 1
                if text is not None:
                    other[j] = text
        r = reason[take]
        values = chosen[take]
        for i, c in enumerate(q.codes):
            self.cols[q.option_column(c)] = pd.arrays.IntegerArray(values[:, i].copy(), r != 0)
        if q.other_choice is not None:
            self.cols[q.other_column] = pd.arrays.StringArray(other[take])
        self.note(r == SKIPPED, q.name, SKIPPED)
        self.note(r == BLANK, q.name, BLANK)

    def _states(self, q: Question, parts: list[ColumnMatch], allowed: str) -> np.ndarray:
        """(n, k) int array of per-option cells: the number, -3 skipped, -9 blank/absent."""
        states = np.full((self.n, len(q.codes)), -9, np.int64)
        pos = {c: i for i, c in enumerate(q.codes)}
        for m in parts:
            if m.code not in pos:
                continue
            take, uniques = factorize(self.col(m))
            vals = np.empty(len(uniques), np.int64)
            for j, u in enumerate(uniques):
                mark = self.marker(u)
                value = -3 if mark == SKIPPED else -9 if mark == BLANK else _as_int(u.strip())
                if value is None or (allowed == "01" and value not in (0, 1, -3, -9)) or (
                        allowed == "rank" and value not in (-2, -3, -9) and not 1 <= value <= len(q.codes)):
                    kind = "0/1" if allowed == "01" else "rank"
                    raise self.fail(q, u, f"in column “{m.header}” is not a valid {kind} value",
                                    self.rows[np.argmax(take == j)])
                vals[j] = value
            states[:, pos[m.code]] = vals[take]
        return states

    def multi_parts(self, q: Question, parts: list[ColumnMatch]) -> None:
        states = self._states(q, parts, "01")
        answered = (states == 1).any(axis=1)
        skipped = ~answered & (states == -3).any(axis=1)
        present = {m.code for m in parts}
        for i, c in enumerate(q.codes):
            mask = ~answered if c in present else np.ones(self.n, bool)
            self.cols[q.option_column(c)] = pd.arrays.IntegerArray((states[:, i] == 1).astype(np.int64), mask)
        if q.other_choice is not None:
            self.cols[q.other_column] = empty_column("string", self.n)
        self.note(skipped, q.name, SKIPPED)
        self.note(~answered & ~skipped, q.name, BLANK)

    def rank_text(self, q: Question, col) -> None:
        take, uniques = factorize(col)
        k, width = len(uniques), len(q.codes)
        position = np.zeros((k, width), np.int64)
        reason, other = np.zeros(k, np.int8), filled(k, None)
        pos = {c: i for i, c in enumerate(q.codes)}
        for j, u in enumerate(uniques):
            reason[j] = self.marker(u)
            if reason[j]:
                continue
            for p, piece in enumerate(re.split(f"{RANK_SEP}|->", u), start=1):
                option, text = split_other(piece.strip())
                try:
                    code = self.choice_code(q, option, text)
                except _Unknown as exc:
                    raise self.unknown(q, exc, take, j) from None
                position[j, pos[code]] = p
                if text is not None:
                    other[j] = text
        self._rank_out(q, position[take], reason[take])
        if q.other_choice is not None:
            self.cols[q.other_column] = pd.arrays.StringArray(other[take])

    def rank_parts(self, q: Question, parts: list[ColumnMatch]) -> None:
        states = self._states(q, parts, "rank")
        ranked = (states > 0).any(axis=1)
        row_reason = np.where(ranked, 0, np.where((states == -3).any(axis=1), SKIPPED, BLANK)).astype(np.int8)
        self._rank_out(q, np.where(states > 0, states, 0), row_reason)
        if q.other_choice is not None:
            self.cols[q.other_column] = empty_column("string", self.n)

    def _rank_out(self, q: Question, position: np.ndarray, row_reason: np.ndarray) -> None:
        for i, c in enumerate(q.codes):
            column = q.option_column(c)
            unranked = position[:, i] == 0
            self.cols[column] = pd.arrays.IntegerArray(position[:, i].copy(), unranked)
            self.note(row_reason == SKIPPED, column, SKIPPED)
            self.note(row_reason == BLANK, column, BLANK)
            self.note(unranked & (row_reason == 0), column, NOT_RANKED)
