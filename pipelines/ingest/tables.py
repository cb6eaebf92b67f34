"""Read any export file as a table of strings, and the RawResponses column layout.

`read_table(path)` gives a DataFrame whose columns are the header row's texts (repeated headers are kept,
so address columns by position) and whose cells are the strings the file holds: nothing is coerced, Excel
datetime cells become `YYYY-MM-DD HH:MM:SS`, whole numbers never turn into `1.38e+10`, empty cells are "".
Raw files are only ever opened for reading. Every way a file can be unreadable is an InputError that names
the file and says what to do.

Documented repairs (tests/test_corpus.py shows each): CSV text in UTF-8 (with or without BOM), GBK/GB18030
and UTF-16 (with a BOM, or without one, recognised from its zero bytes); title rows above the header and a
summary sheet before the answer sheet are skipped when the caller says what a header looks like (`accept`);
Excel date serials (`45601.33799`) in time columns become timestamps (`parse_times`). Bytes that no platform
writes are an error naming the line, never a guessed encoding.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook
from pipelines.errors import InputError

EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".xlsb", ".ods"}
TEXT_SUFFIXES = {".csv", ".txt", ".tsv"}
ARCHIVE_SUFFIXES = {".zip", ".rar", ".7z", ".gz", ".tar"}
DELIMITERS = (",", ";", "\t")
REDOWNLOAD = "download it again from the platform, or open it in Excel and save it as .xlsx"
HEADER_SEARCH_ROWS = 10  # a title block above the header row is at most this many non-empty rows


def read_table(path: str | Path, accept: Callable[[list[str]], bool] | None = None) -> pd.DataFrame:
    """The export's answer sheet as strings; columns = header texts, index = 1-based data row in the file.

    Without `accept` this is the first sheet and its first non-empty row is the header. With `accept` (a test
    on a candidate header row, e.g. "a platform recognises it") two documented repairs apply: title rows
    above the header (a merged `家长问卷 答卷数据` banner) are skipped, and when the first sheet holds no such
    header (a summary sheet first) the first later sheet that does is read. `frame.attrs` records both
    (`sheet`, `header_row`, 1-based in the file); when nothing is accepted the first sheet's first row is the
    header, so the caller's own error message names what it found.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in ARCHIVE_SUFFIXES:
        raise InputError(path, f"is a compressed archive ({suffix}), not an export",
                         "unzip it, put the .xlsx/.csv files it holds in this folder and remove the archive")
    if suffix not in EXCEL_SUFFIXES | TEXT_SUFFIXES:
        raise InputError(path, f"is not a spreadsheet ({suffix or 'no extension'})",
                         "exports are read from .xlsx, .xls or .csv files; remove other files from the folder")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(path, f"cannot be opened: {exc.strerror or exc}", "check the path") from None
    if size == 0:
        raise InputError(path, "is empty (0 bytes)", REDOWNLOAD)
    if suffix in EXCEL_SUFFIXES:
        return _answer_sheet(path, accept)
    return _with_header(path, _read_csv(path), accept)


# ------------------------------------------------------------------------------------------ Excel

def _answer_sheet(path: Path, accept: Callable[[list[str]], bool] | None) -> pd.DataFrame:
    """The first sheet (without `accept`), else the first sheet with an accepted header row, else the first
    sheet that has a header row at all."""
    fallback, first_error = None, None
    for index, (name, rows) in enumerate(_excel_sheets(path)):
        try:
            table = _with_header(path, rows, accept)
        except InputError as exc:  # an empty sheet: the answers may be on a later one (Sheet1 left empty)
            if accept is None:
                raise
            first_error = first_error or exc
            continue
        table.attrs.update(sheet=name, first_sheet=index == 0)
        if accept is None or table.attrs["accepted"]:
            return table
        fallback = fallback if fallback is not None else table
    if fallback is not None:
        return fallback
    raise first_error


PROTECTED_HINT = ("open it in Excel, remove the password (File → Info → Protect Workbook → Encrypt with Password) "
                  "and save it as .xlsx, or download it again from the platform")


def _excel_sheets(path: Path) -> Iterator[tuple[str, pd.DataFrame]]:
    """(name, cells as strings) of each sheet in workbook order, read only when asked for."""
    from python_calamine import CalamineWorkbook

    with open(path, "rb") as fh:
        head = fh.read(8)
    ole = head.startswith(b"\xd0\xcf\x11\xe0")
    if ole and path.suffix.lower() != ".xls":
        raise InputError(path, "is password-protected or not a real .xlsx file (it is an encrypted/OLE container)",
                         PROTECTED_HINT)
    try:
        book = CalamineWorkbook.from_path(str(path))
        names = list(book.sheet_names)
        if not names:
            raise InputError(path, "has no worksheet", REDOWNLOAD)
        first = book.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except InputError:
        raise
    except Exception as exc:  # calamine raises its own error types for broken/truncated/encrypted files
        raise _unreadable(path, exc, ole) from None
    yield names[0], _cells_frame(first)
    for i in range(1, len(names)):
        try:
            cells = book.get_sheet_by_index(i).to_python(skip_empty_area=False)
        except Exception:  # a later sheet that cannot be read is not the answer sheet
            continue
        yield names[i], _cells_frame(cells)


def _unreadable(path: Path, exc: Exception, ole: bool) -> InputError:
    detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    if ole and re.search(r"passw|encrypt|protect", str(exc), re.IGNORECASE):
        return InputError(path, f"is password-protected ({detail})", PROTECTED_HINT)
    hint = PROTECTED_HINT if ole else REDOWNLOAD
    return InputError(path, f"cannot be opened as a workbook (truncated, damaged or password-protected: {detail})",
                      hint)


def _cells_frame(cells: list) -> pd.DataFrame:
    """The sheet's cells as a frame of texts, converted column by column on a numpy grid and wrapped once
    (assigning ~150 columns into a frame one by one cost more than reading the workbook)."""
    if not cells:
        return pd.DataFrame()
    width = len(cells[0])
    if width and all(len(row) == width for row in cells):
        grid = np.empty((len(cells), width), dtype=object)
        grid[:] = cells
    else:  # ragged rows: pandas pads the short ones with None
        grid = pd.DataFrame(cells, dtype=object).to_numpy(dtype=object)
    for j in range(grid.shape[1]):
        grid[:, j] = _cell_texts(grid[:, j])
    return pd.DataFrame(grid, dtype=object)


def _cells_to_text(col: pd.Series) -> pd.Series:
    """Excel cell values → the text they show, column-wise: numbers in bulk, other non-strings per cell."""
    arr = col.to_numpy(dtype=object)
    out = _cell_texts(arr)
    return col if out is arr else pd.Series(out, index=col.index, dtype=object)


def _cell_texts(arr: np.ndarray) -> np.ndarray:
    """`_cells_to_text` on an object array; the array itself when it holds only strings."""
    kind = pd.api.types.infer_dtype(arr, skipna=False)
    if kind in ("string", "empty"):
        return arr
    if kind == "floating":
        return _floats_to_text(arr.astype(float))
    is_str = np.fromiter((type(v) is str for v in arr), dtype=bool, count=len(arr))
    out = arr.copy()
    rest = arr[~is_str]
    if pd.api.types.infer_dtype(rest, skipna=False) == "floating":
        out[~is_str] = _floats_to_text(rest.astype(float))
    else:
        out[~is_str] = [_cell_text(v) for v in rest]
    return out


def _floats_to_text(values: np.ndarray) -> np.ndarray:
    """136.0 → '136', 13812345678.0 → '13812345678' (never scientific), 0.5 → '0.5'."""
    out = np.empty(len(values), dtype=object)
    whole = np.isfinite(values) & (values == np.floor(values)) & (np.abs(values) < 2.0 ** 62)
    out[whole] = values[whole].astype(np.int64).astype(str).astype(object)
    out[~whole] = [_cell_text(float(v)) for v in values[~whole]]
    return out


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return ""
        if value.is_integer():
            return str(int(value))
        return np.format_float_positional(value, trim="-")
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, dt.time):
        return value.strftime("%H:%M:%S")
    if isinstance(value, dt.timedelta):
        total = int(value.total_seconds())
        return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"
    return str(value)


# ------------------------------------------------------------------------------------------ CSV

def detect_encoding(path: Path, data: bytes) -> str:
    """BOM → utf-8-sig / utf-16; UTF-16 without BOM from its zero bytes; else UTF-8, then GB18030."""
    return _decode(path, data)[1]


DECODE_HINT = "download it again, or open it in Excel and save it as CSV UTF-8"


def _decode(path: Path, data: bytes) -> tuple[str, str]:
    bom = next((e for b, e in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                               (codecs.BOM_UTF16_BE, "utf-16")) if data.startswith(b)), None)
    if bom is not None:
        try:
            return data.decode(bom), bom
        except UnicodeDecodeError as exc:
            raise InputError(path, f"starts with a {bom} byte-order mark but is not valid {bom} "
                                   f"(line {_line_of(data, exc.start)})", DECODE_HINT) from None
    if b"\x00" in data[:4096]:
        utf16 = _utf16_without_bom(data)
        if utf16 is not None:
            return utf16
        raise InputError(path, "is not a text/CSV file (it contains binary data)",
                         "check the file type; " + REDOWNLOAD)
    # Chinese text already seen as valid UTF-8: a later bad byte means damage, not GB18030 (which would
    # decode most UTF-8 as mojibake and turn the error into a misleading "unknown platform")
    head = _utf8_head(data)
    utf8 = head is not None and not head.isascii()
    errors = []
    for encoding in ("utf-8",) if utf8 else ("utf-8", "gb18030"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as exc:
            errors.append(exc.start)
    # no guessing: an encoding no platform writes, or a damaged file; say where the bad bytes are
    where = max(errors)
    what = "is UTF-8 text with" if utf8 else "is neither UTF-8 nor GB18030 text:"
    raise InputError(path, f"{what} undecodable bytes at line {_line_of(data, where)} "
                           f"(byte {where + 1}; the file may be damaged)", DECODE_HINT)


def _line_of(data: bytes, position: int) -> int:
    return data.count(b"\n", 0, position) + 1


def _utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """UTF-16 text written without a byte-order mark: ASCII characters (digits, commas, line ends) leave a zero
    byte on one side of their code unit; on the other side a zero is rare (only CJK characters like 一, U+4E00)."""
    head = np.frombuffer(data[:4096 - 4096 % 2], dtype=np.uint8)
    if len(head) < 4:
        return None
    even, odd = (head[0::2] == 0).mean(), (head[1::2] == 0).mean()
    for encoding, zeros, other in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if zeros >= 0.1 and other <= zeros / 8 and len(data) % 2 == 0:
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                return None
            return (text, encoding) if "\x00" not in text else None
    return None


def sniff_delimiter(first_line: str) -> str:
    counts = {d: _count_outside_quotes(first_line, d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _count_outside_quotes(line: str, delim: str) -> int:
    parts = line.split('"')
    return sum(p.count(delim) for p in parts[::2])


def _read_csv(path: Path) -> pd.DataFrame:
    data = path.read_bytes()
    frame = None
    head = _utf8_head(data)
    if head is not None:  # UTF-8 (the usual case): pyarrow validates the rest itself, no full decode here
        first = _first_line(head)
        frame = _read_csv_arrow(data, sniff_delimiter(first), first)
    if frame is None:
        text, encoding = _decode(path, data)
        first = _first_line(text)
        delim = sniff_delimiter(first)
        if encoding not in ("utf-8", "utf-8-sig"):
            data = text.encode("utf-8")
        frame = _read_csv_arrow(data, delim, first)
        if frame is None:
            frame = _read_csv_pandas(path, text, delim, _width(text, first, delim))
    if b"\t" in data:  # cells wrapped in tabs (Tencent); a tab-separated file has none left in its cells
        for col in frame.columns:
            frame[col] = frame[col].str.strip("\t")
    return frame


def _utf8_head(data: bytes) -> str | None:
    """The first MB decoded when the file looks like UTF-8 (BOM or valid so far), else None."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in data[:4096]:
        return None
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(data[: 1 << 20], final=False)
    except UnicodeDecodeError:
        return None


def _width(text: str, first: str, delim: str) -> int | None:
    """Columns of the table when its first line is a title without delimiters (`家长问卷 答卷数据` above the
    header): the first of the next lines that has some. None when the first line is the header."""
    if _count_outside_quotes(first, delim):
        return None
    for line in text.lstrip("\ufeff").splitlines()[1:HEADER_SEARCH_ROWS + 1]:
        n = _count_outside_quotes(line, delim)
        if n:
            return n + 1
    return None


def _first_line(text: str) -> str:
    text = text.lstrip("\ufeff")
    end = text.find("\n")
    return (text if end < 0 else text[:end]).rstrip("\r")


def _newline_in_quotes(data: bytes) -> bool:
    """True when a quoted field holds a line break (the parser must then not split blocks at newlines)."""
    if b'"' not in data:
        return False
    raw = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(raw == 34)
    newlines = np.flatnonzero(raw == 10)
    return bool((np.searchsorted(quotes, newlines) % 2).any())


def _read_csv_arrow(data: bytes, delim: str, first_line: str) -> pd.DataFrame | None:
    """pyarrow's multi-threaded parser, every column as text (ArrowDtype string columns); None when it cannot."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        return None
    width = len(next(csv.reader([first_line], delimiter=delim), []))
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True, encoding="utf8"),
            parse_options=pacsv.ParseOptions(delimiter=delim, newlines_in_values=_newline_in_quotes(data)),
            convert_options=pacsv.ConvertOptions(column_types={f"f{i}": pa.string() for i in range(width)},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowException, ValueError):
        return None
    if table.num_columns != width or any(not pa.types.is_string(t) for t in table.schema.types):
        return None
    frame = table.to_pandas(types_mapper={pa.string(): pd.ArrowDtype(pa.string())}.get)
    frame.columns = range(frame.shape[1])
    return frame


def _read_csv_pandas(path: Path, text: str, delim: str, width: int | None = None) -> pd.DataFrame:
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delim, header=None, dtype=str, keep_default_na=False,
                            na_filter=False, skip_blank_lines=True, engine="c",
                            names=range(width) if width else None)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(path, f"is not a well-formed CSV file ({str(exc).strip()[:160]})",
                         "a row has more cells than the header: " + REDOWNLOAD) from None
    return frame.fillna("")


# ------------------------------------------------------------------------------------------ header

def _with_header(path: Path, rows: pd.DataFrame, accept: Callable[[list[str]], bool] | None = None) -> pd.DataFrame:
    if rows.empty or rows.shape[1] == 0:
        raise InputError(path, "has no header row (it holds no cells)", REDOWNLOAD)
    filled = np.zeros(len(rows), dtype=bool)
    for j in range(rows.shape[1]):  # column by column, only while rows are still empty (usually none after 序号)
        if filled.all():
            break
        filled |= rows.iloc[:, j].ne("").to_numpy(dtype=bool)
    if not filled.any():
        raise InputError(path, "has no header row (every cell is empty)", REDOWNLOAD)
    start = int(np.argmax(filled))
    accepted = True
    if accept is not None:
        candidates = np.flatnonzero(filled)[:HEADER_SEARCH_ROWS]
        found = next((int(i) for i in candidates if accept([str(h).strip() for h in rows.iloc[i].tolist()])), None)
        accepted = found is not None
        start = found if accepted else start
    header = [str(h).strip() for h in rows.iloc[start].tolist()]
    body = rows.iloc[start + 1:]
    if not filled[start + 1:].all():
        body = body.loc[filled[start + 1:]]  # rows with no cell at all are not responses
    keep = len(header)
    while keep and header[keep - 1] == "" and not body.iloc[:, keep - 1].ne("").any():
        keep -= 1  # a trailing empty column (Tencent ends every line with a comma)
    if keep == 0:
        raise InputError(path, "has no header row", REDOWNLOAD)
    body = body.iloc[:, :keep]
    # the index is the 1-based data row in the file (header excluded), kept across dropped empty rows
    body.index = pd.RangeIndex(len(rows))[start + 1:][filled[start + 1:]] - start
    body.columns = header[:keep]
    body.attrs.update(accepted=accepted, header_row=start + 1)
    return body


# ------------------------------------------------------------------------------------------ layout

META_COLUMNS = ["source_file", "source_row", "platform_id", "submitted_at", "duration_s", "channel", "ip"]
META_DTYPES = {"source_file": "string", "source_row": "int64", "platform_id": "string",
               "submitted_at": "datetime64[ns]", "duration_s": "float64", "channel": "string", "ip": "string"}


def raw_columns(codebook: Codebook) -> dict[str, str]:
    """Question columns of RawResponses (personal ones included) → dtype, in questionnaire order."""
    out: dict[str, str] = {}
    for q in codebook.questions:
        if q.type in ("select_multiple", "rank"):
            for code in q.codes:
                out[q.option_column(code)] = "Int64"
        elif q.type == "select_one":
            out[q.name] = "Int64"
        else:
            out[q.name] = "string"
        if q.other_choice is not None:
            out[q.other_column] = "string"
    return out


def empty_frame(codebook: Codebook) -> pd.DataFrame:
    dtypes = {**META_DTYPES, **raw_columns(codebook)}
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in dtypes.items()})


def relative(path: Path, root: str | Path | None) -> str:
    if root is not None:
        try:
            return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()


# ------------------------------------------------------------------------------------------ column helpers

def filled(n: int, value) -> np.ndarray:
    """np.full(n, value, dtype=object) without its slow object path."""
    out = np.empty(n, dtype=object)
    out[:] = value
    return out


def empty_column(dtype: str, n: int):
    if dtype == "Int64":
        return pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, dtype=bool))
    return pd.arrays.StringArray(filled(n, None))


def const_strings(value: str, n: int):
    return pd.arrays.StringArray(filled(n, value))


def factorize(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes per row, distinct values as an object array of str)."""
    take, uniques = pd.factorize(col)
    if hasattr(uniques, "to_numpy"):
        uniques = uniques.to_numpy(dtype=object)
    return take, np.asarray(uniques, dtype=object)


def column_values(table: pd.DataFrame) -> list:
    """Each column of a table of strings as an object array (by position: headers may repeat), converted in one
    step for the whole table; a column that is not text stays a Series, as the readers used to get it."""
    text = [pd.api.types.is_string_dtype(t) for t in table.dtypes]
    if all(text):
        return list(np.ascontiguousarray(table.to_numpy(dtype=object).T))
    return [table.iloc[:, j].to_numpy(dtype=object) if is_text else table.iloc[:, j] for j, is_text in enumerate(text)]


def isin(values, texts) -> np.ndarray:
    """`Series.isin(texts)` as a bool array, testing each distinct value once."""
    return isin_each(values, texts)[0]


def isin_each(values, *text_lists) -> list[np.ndarray]:
    """`isin(values, texts)` for each list of texts, from one factorize of `values`."""
    take, uniques = factorize(values)
    out = []
    for texts in text_lists:
        wanted = set(texts)
        out.append(np.array([u in wanted for u in uniques] + [False], dtype=bool)[take])
    return out


def per_unique(values, fn) -> np.ndarray:
    """fn applied once per distinct value, taken back to every row."""
    take, uniques = factorize(values)
    return np.array([fn(u) for u in uniques] + [None], dtype=object)[take]


def strings(values: np.ndarray):
    values = values.copy()
    values[values == ""] = None
    return pd.arrays.StringArray(values)


EXCEL_EPOCH = pd.Timestamp("1899-12-30")  # serial 1 = 1900-01-01 (Excel's 1900 date system, after its leap bug)
_SERIAL = re.compile(r"^\d{5}(?:\.\d+)?$")
SERIAL_RANGE = (21916, 73051)  # 1960-01-01 … 2099-12-31: a bare number there in a time column is a date serial


def parse_times(text: np.ndarray) -> np.ndarray:
    """`2024/07/05 14:22:55`, `2024-07-05 14:22:55` (fast formats first), Excel date serials (`45478.5988`,
    what a time cell shows once its date format is lost), anything else pandas can read; else NaT."""
    s = pd.Series(text)
    out = pd.to_datetime(s, format="%Y/%m/%d %H:%M:%S", errors="coerce")
    for fmt in ("%Y-%m-%d %H:%M:%S", "serial", "mixed"):
        bad = (out.isna() & s.ne("")).to_numpy()
        if not bad.any():
            break
        if fmt == "serial":
            out[bad] = _from_serials(s[bad])
            continue
        try:
            out[bad] = pd.to_datetime(s[bad], format=fmt, errors="coerce")
        except (ValueError, TypeError):  # e.g. time-zone offsets mixed with naive times: leave those NaT
            break
    return out.astype("datetime64[ns]").to_numpy()


def _from_serials(s: pd.Series) -> pd.Series:
    """Excel date serials → timestamps rounded to the second (a serial carries ~1e-6 s of float noise)."""
    text = s.astype(str).str.strip()
    numbers = pd.to_numeric(text.where(text.str.fullmatch(_SERIAL)), errors="coerce")
    numbers = numbers.where(numbers.between(*SERIAL_RANGE))
    return (EXCEL_EPOCH + pd.to_timedelta(numbers, unit="D")).dt.round("s")


_DURATION = re.compile(r"^(?:(\d+)(?:小时|时))?(?:(\d+)分(?:钟)?)?(?:(\d+(?:\.\d+)?)秒?)?$")


def _seconds(text: str) -> float:
    m = _DURATION.match(text.replace(" ", "")) if text else None
    if not m or not any(m.groups()):
        return np.nan
    h, mi, sec = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + sec


def parse_duration(text: np.ndarray) -> np.ndarray:
    """`136秒` → 136.0 (also `2分16秒`, `1小时2分`, a bare number); else NaN."""
    return per_unique(text, _seconds).astype(float)
