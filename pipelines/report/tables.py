"""The published tables: `tables/<name>.csv` (UTF-8 with BOM) and `tables/appendix.xlsx`.

Both are written from the prepared (suppressed) tables, deterministically: fixed column order, integers as
integers, fixed workbook properties (created = the quarter's last day) so the same inputs give the same
bytes. Text cells that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`) get a leading apostrophe
in the CSVs, and the workbook writes every string as a string (no formulas, no hyperlinks).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import xlsxwriter
from xlsxwriter.utility import xl_col_to_name
from xlsxwriter.worksheet import CellBooleanTuple, CellNumberTuple, CellStringTuple, Worksheet

from pipelines.collector import paused
from pipelines.report.context import ESTIMATE_NUMBERS, OUTCOME_NUMBERS, TABLE_COLUMNS, TABLES, map_distinct
from pipelines.report.text import Strings, load_strings

INTEGER_COLUMNS = {"n", "n_pre", "n_post", "n_pairs", "step", "rows", "sample_n", "iterations", "activities",
                   "attendances", "people", "target_activities", "target_attendances", "target_people",
                   "unexpected_count", "rank", "k"}
SUPPRESSIBLE = {"estimates": ESTIMATE_NUMBERS, "needs_priority": ["estimate", "ci_low", "ci_high"],
                "outcomes": OUTCOME_NUMBERS, "composition": ["sample_share", "weighted_share"],
                "services": ["attendances", "people", "completion_attendances", "completion_people"],
                "reliability": ["alpha", "ci_low", "ci_high"]}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def write_atomic(path: Path, data: bytes) -> Path:
    """Write beside the target, then rename over it: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def _defuse(value):
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def for_output(name: str, frame: pd.DataFrame, defuse: bool = True) -> pd.DataFrame:
    """The table as published: integer columns as integers, and (unless `defuse` is false: the caller
    does it) text cells that a spreadsheet would run as a formula behind an apostrophe."""
    out = frame.copy()
    for col in out.columns:
        if col in INTEGER_COLUMNS:
            out[col] = out[col].round().astype("Int64")
        elif defuse and out[col].dtype == object:
            out[col] = map_distinct(out[col], _defuse)
    return out


def csv_bytes(name: str, frame: pd.DataFrame, piece: tuple[int, int] = (0, 1)) -> bytes:
    """tables/<name>.csv, or piece `i` of `k` of it (`piece=(i, k)`: the i-th of k runs of rows, the first
    with the byte-order mark and the header): the k pieces joined are the whole file's bytes, as every cell
    is formatted on its own (`csv_text`). A run makes the pieces of a large table in both its processes."""
    i, k = piece
    if k > 1:
        frame = frame.iloc[len(frame) * i // k: len(frame) * (i + 1) // k]
    out = for_output(name, frame, defuse=False)
    text = csv_text(out, text=_defuse)   # (defused as they are quoted)
    if i > 0:   # (without the header, which a quoted column name may spread over lines)
        return text[len(csv_text(out.iloc[:0])):].encode("utf-8")
    return b"\xef\xbb\xbf" + text.encode("utf-8")


def csv_text(frame: pd.DataFrame, text=None) -> str:
    """`frame.to_csv(index=False, lineterminator="\\n")`, the same text, assembled column by column;
    `text(value)`, if given, first replaces each value of the text (object) columns, as
    `map_distinct(column, text)` would.

    pandas formats every cell on its own and hands each row to the csv module; the report's tables
    (estimates.csv: tens of thousands of rows) repeat a few thousand distinct labels, so each distinct
    text is quoted once here and the rows are joined as strings. Cells are formatted as pandas formats
    them (floats with numpy's `astype(str)`, missing as empty); a table with a column type not handled
    here, or fewer than two columns (the csv module quotes a lone empty field), goes to pandas."""
    if len(frame.columns) < 2 or not frame.columns.map(lambda c: isinstance(c, str)).all():
        return _to_csv(frame, text)
    fields = []
    for _, column in frame.items():
        cells = _csv_cells(column, text)
        if cells is None:
            return _to_csv(frame, text)
        fields.append(cells)
    header = ",".join(_csv_quote(c) for c in frame.columns)
    return header + "\n" + "".join(_interleave(fields, len(frame)))


def _interleave(fields: list[list[str]], n: int) -> list[str]:
    """The cells of `n` rows, row by row, each followed by its "," or the row's "\n": one list joined
    once is about three times quicker than joining each row's tuple from `zip(*fields)` (tens of
    thousands of rows), as each column goes into its slots with one slice assignment."""
    k = len(fields)
    flat = [","] * (2 * k * n)
    for j, cells in enumerate(fields):
        flat[2 * j::2 * k] = cells
    flat[2 * k - 1::2 * k] = ["\n"] * n
    return flat


def _to_csv(frame: pd.DataFrame, text=None) -> str:
    if text is not None:
        frame = frame.assign(**{col: map_distinct(frame[col], text) for col in frame.columns
                                if frame[col].dtype == object})
    return frame.to_csv(index=False, lineterminator="\n")


def _csv_cells(column: pd.Series, text=None) -> list[str] | None:
    """One column's CSV fields as pandas writes them (text columns through `text` first), or None for a
    type left to pandas."""
    dtype = column.dtype
    if dtype == object:
        if pd.api.types.infer_dtype(column, skipna=True) not in ("string", "empty"):
            return None
        if text is None:
            return map_distinct(column, lambda v: "" if v is None else _csv_quote(v)).tolist()
        return map_distinct(column, lambda v: "" if v is None else _csv_quote(text(v))).tolist()
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        # each distinct value (by its bits: 0.0 and -0.0 print differently) formatted once; pandas formats
        # with numpy's `astype(str)`, the shortest text that reads back as the same float, as Python's
        # float repr is (the same text; a third quicker)
        values = column.to_numpy(dtype=np.float64)
        codes, distinct = pd.factorize(values.view(np.int64))
        text = np.array(list(map(float.__repr__, distinct.view(np.float64).tolist())), dtype=object)[codes]
        text[np.isnan(values)] = ""
        return text.tolist()
    if isinstance(dtype, np.dtype) and dtype.kind in "biu":
        return [str(v) for v in column.tolist()]
    if isinstance(dtype, pd.Int64Dtype):
        return ["" if v is pd.NA else str(v) for v in column.array]
    return None


def _csv_quote(text: str) -> str:
    """A text field exactly as the csv module writes it in a row of several fields (minimal quoting)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([text, ""])
    return out.getvalue()[:-2]   # less the empty second field's "," and the line end


def _definitions(extra: dict[str, pd.DataFrame] | None = None) -> list[tuple[str, str, str, str]]:
    cols = load_strings().get("columns", {})
    rows = []
    for name, columns in [*TABLE_COLUMNS.items(), *((k, list(v.columns)) for k, v in (extra or {}).items())]:
        for col in columns:
            entry = cols.get(f"{name}__{col}") or cols.get(col) or {"zh": "", "en": ""}
            rows.append((name, col, entry["zh"], entry["en"]))
    return rows


APPENDIX_ROW_LIMIT = 20000


def workbook_bytes(tables: dict[str, pd.DataFrame], quarter: str, created: dt.date | None, min_cell: int,
                   extra: dict[str, pd.DataFrame] | None = None) -> bytes:
    """tables/appendix.xlsx: a definitions sheet, then one sheet per table of CONTRACT §4 and per `extra`
    table (the longitudinal ones: attrition, reliable change, trend models).

    The collector is paused meanwhile: xlsxwriter keeps a small tuple per cell until the workbook is closed
    (a quarter's appendix: ~160,000); their allocation kept setting off the collector's passes over every
    object of the run, ~0.4 s per workbook, which found nothing to free (cells hold no reference cycles)."""
    with paused():
        return _workbook_bytes(tables, quarter, created, min_cell, extra)


class _Sheet(Worksheet):
    """xlsxwriter's worksheet, writing the XML of its plain cells (numbers, shared strings, booleans) a row at
    a time: xlsxwriter's general `_write_cell` builds and escapes a list of attributes per cell, and its
    `_write_rows` and `_calculate_spans` scan every column of every row, most of the appendix's time
    (~160,000 cells). The text is the same (a cell reference and a format number need no escaping:
    tests/test_report.py compares with xlsxwriter's own); any other cell, and a sheet with comments or in
    constant-memory mode, goes to xlsxwriter's own writer."""

    def _write_rows(self) -> None:
        if self.constant_memory or self.comments:
            return super()._write_rows()
        table, row_info = self.table, self.row_info
        filled = {r: cells for r, cells in table.items() if cells}
        spans: dict[int, list[int]] = {}   # per block of 16 rows, the first and last column with a cell
        for r, cells in filled.items():
            lo, hi = min(cells), max(cells)
            span = spans.get(r // 16)
            if span is None:
                spans[r // 16] = [lo, hi]
            else:
                span[0], span[1] = min(span[0], lo), max(span[1], hi)
        self.row_spans = {k: f"{lo + 1}:{hi + 1}" for k, (lo, hi) in spans.items()}
        names = [xl_col_to_name(c) for c in range(self.dim_colmax + 1)]
        column_attrs: dict[int, str] = {}   # a column's format, as the attribute of its cells without one
        string_tails: dict[int, str] = {}   # the rest of a shared string's cell, by its index
        write = self.fh.write
        for r in sorted(filled.keys() | row_info.keys()):
            span = self.row_spans.get(r // 16)
            info = row_info.get(r)
            cells = filled.get(r)
            if cells is None:
                self._write_empty_row(r, span, info)
                continue
            self._write_row(r, span, info)
            row_style = info.row_format if info is not None and info.row_format else None
            number = str(r + 1)
            out = []
            for c in sorted(cells):
                cell = cells[c]
                kind = cell.__class__
                if kind is CellNumberTuple:
                    tail = f"><v>{cell.number:.16G}</v></c>"
                elif kind is CellStringTuple:
                    tail = string_tails.get(cell.string)
                    if tail is None:
                        tail = string_tails[cell.string] = f' t="s"><v>{cell.string}</v></c>'
                elif kind is CellBooleanTuple:
                    tail = f' t="b"><v>{"" if cell.boolean is None else cell.boolean}</v></c>'
                else:
                    if out:
                        write("".join(out))
                        out = []
                    self._write_cell(r, c, cell)
                    continue
                # the cell's format, else its row's, else its column's (as xlsxwriter does)
                style = cell.format or row_style
                if style:
                    attr = f' s="{style._get_xf_index()}"'
                else:
                    attr = column_attrs.get(c)
                    if attr is None:
                        info_c = self.col_info.get(c)
                        style = info_c.column_format if info_c is not None else None
                        attr = column_attrs[c] = f' s="{style._get_xf_index()}"' if style else ""
                out.append(f'<c r="{names[c]}{number}"{attr}{tail}')
            write("".join(out))
            self._xml_end_tag("row")


def _workbook_bytes(tables: dict[str, pd.DataFrame], quarter: str, created: dt.date | None, min_cell: int,
                    extra: dict[str, pd.DataFrame] | None) -> bytes:
    zh, en = Strings("zh"), Strings("en")
    marker = f"{zh('definitions.suppressed_marker', min_cell=min_cell)} / " \
             f"{en('definitions.suppressed_marker', min_cell=min_cell)}"
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
                                        "strings_to_numbers": False, "nan_inf_to_errors": False})
    stamp = dt.datetime.combine(created or dt.date(2000, 1, 1), dt.time(0, 0))
    book.set_properties({"title": f"筑梦“童”行 {quarter} appendix", "subject": "tables of the quarterly report",
                         "author": "tongxing", "company": "", "created": stamp, "comments": ""})
    head = book.add_format({"bold": True, "bg_color": "#E8EEF4", "text_wrap": True, "valign": "top"})
    wrap = book.add_format({"text_wrap": True, "valign": "top"})
    grey = book.add_format({"font_color": "#7A7A7A", "italic": True})
    sheet = book.add_worksheet(f"{zh('definitions.sheet')} {en('definitions.sheet')}", _Sheet)
    header = [f"{zh('definitions.col_table')} {en('definitions.col_table')}",
              f"{zh('definitions.col_column')} {en('definitions.col_column')}",
              zh("definitions.col_meaning"), en("definitions.col_meaning")]
    sheet.write_row(0, 0, header, head)
    definitions = _definitions(extra)
    for i, row in enumerate(definitions, start=1):
        sheet.write_row(i, 0, row, wrap)
    sheet.write(len(definitions) + 2, 0, marker, grey)
    for col, width in enumerate((16, 22, 48, 60)):
        sheet.set_column(col, col, width)
    sheet.freeze_panes(1, 0)
    sheets = {**{name: tables[name] for name in TABLES}, **(extra or {})}
    for name, frame in sheets.items():
        if name == "estimates" and "group_var" in frame.columns and len(frame) > APPENDIX_ROW_LIMIT:
            # the group breakdowns (tens of thousands of rows) stay in tables/estimates.csv; a funder's
            # workbook holds the whole-population estimates, and says where the rest is
            frame = frame[frame["group_var"].fillna("").astype(str) == ""]
            sheet.write(len(definitions) + 3, 0, f"{zh('definitions.estimates_subset')} / "
                        f"{en('definitions.estimates_subset')}", grey)
        frame = for_output(name, frame)
        ws = book.add_worksheet(name, _Sheet)
        ws.write_row(0, 0, list(frame.columns), head)
        suppressed = frame["suppressed"].to_numpy(dtype=bool) if "suppressed" in frame.columns else None
        for c, col in enumerate(frame.columns):
            _write_column(ws, c, frame[col], marker if col in SUPPRESSIBLE.get(name, ()) else None,
                          suppressed, grey)
        ws.freeze_panes(1, 0)
        ws.autofilter(0, 0, max(1, len(frame)), max(0, len(frame.columns) - 1))
        ws.set_column(0, max(0, len(frame.columns) - 1), 14)
    book.close()
    return buffer.getvalue()


_MARK = object()   # a suppressed row's empty cell: the suppression marker, in grey


def _write_column(ws: _Sheet, c: int, series: pd.Series, marker: str | None, suppressed, grey) -> None:
    """One column, typed once: booleans, numbers (±inf as text, as in the CSV) or strings; an empty cell of
    a suppressed row gets the suppression marker instead of staying blank.

    The cells go into the worksheet's table as xlsxwriter's `_write_number`, `_write_string` and
    `_write_boolean` would put them (a quarter's appendix has ~160,000 cells), without their per-cell checks:
    the column's dimensions are checked once, a text is looked up in the shared strings once per distinct
    value, in the order of first use top to bottom (the order that numbers the workbook's shared strings),
    and its cell is shared by the rows that repeat it."""
    values = series.tolist()[:ws.xls_rowmax - 1]   # (rows past the sheet's last, xlsxwriter would drop)
    marked = suppressed if marker is not None else None
    if series.dtype == bool:
        cells = [CellBooleanTuple(1 if v else 0, None) for v in values]
    elif pd.api.types.is_numeric_dtype(series.dtype):
        numbers = series.to_numpy(dtype=float, na_value=np.nan)[:len(values)]
        special = ~np.isfinite(numbers)
        cells = [CellNumberTuple(v, None) for v in values]
        for i in np.flatnonzero(special).tolist():
            v = values[i]
            if v is not None and v is not pd.NA and not math.isnan(v):
                cells[i] = "inf" if v > 0 else "-inf"
            else:
                cells[i] = _MARK if marked is not None and marked[i] else None
    elif pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        # texts and missing values only: each distinct one typed once
        codes, uniques = pd.factorize(series.to_numpy(dtype=object)[:len(values)], use_na_sentinel=True)
        blank = np.array([u == "" for u in uniques] + [True])[codes]
        cells = np.array([*uniques, None], dtype=object)[codes].tolist()
        for i in np.flatnonzero(blank).tolist():
            cells[i] = _MARK if marked is not None and marked[i] else None
    else:
        cells = []
        for i, v in enumerate(values):
            if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) or v == "":
                cells.append(_MARK if marked is not None and marked[i] else None)
            elif isinstance(v, (bool, np.bool_)):
                cells.append(CellBooleanTuple(1 if v else 0, None))
            else:
                cells.append(str(v))
    rows = [r for r, cell in enumerate(cells, start=1) if cell is not None]
    if not rows:
        return
    ws._check_dimensions(rows[0], c)
    ws._check_dimensions(rows[-1], c)
    strings = ws.str_table
    shared: dict[str, tuple] = {}
    marker_cell = None
    table = ws.table
    for r in rows:
        cell = cells[r - 1]
        if cell.__class__ is str:
            text = cell
            cell = shared.get(text)
            if cell is None:
                if len(text) > ws.xls_strmax // 2:   # (may need truncating: xlsxwriter's own writer)
                    ws._write_string(r, c, text)
                    continue
                cell = shared[text] = CellStringTuple(strings._get_shared_string_index(text), None)
            else:
                strings.count += 1
        elif cell is _MARK:
            if marker_cell is None:
                marker_cell = CellStringTuple(strings._get_shared_string_index(marker), grey)
            else:
                strings.count += 1
            cell = marker_cell
        table[r][c] = cell
