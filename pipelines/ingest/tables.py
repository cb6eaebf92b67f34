"""Read any export file as a table of strings, and the RawResponses column layout.

`read_table(path)` gives a DataFrame whose columns are the header row's texts (repeated headers are kept,
so address columns by position) and whose cells are the strings the file holds: nothing is coerced, Excel
datetime cells become `YYYY-MM-DD HH:MM:SS`, whole numbers never turn into `1.38e+10`, empty cells are "".
Raw files are only ever opened for reading. Every way a file can be unreadable is an InputError that names
the file and says what to do.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook
from pipelines.errors import InputError

EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".xlsb", ".ods"}
TEXT_SUFFIXES = {".csv", ".txt", ".tsv"}
DELIMITERS = (",", ";", "\t")
REDOWNLOAD = "download it again from the platform, or open it in Excel and save it as .xlsx"


def read_table(path: str | Path) -> pd.DataFrame:
    """The export's first sheet as strings; columns = header texts, index = 1-based data row in the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EXCEL_SUFFIXES | TEXT_SUFFIXES:
        raise InputError(path, f"is not a spreadsheet ({suffix or 'no extension'})",
                         "exports are read from .xlsx, .xls or .csv files; remove other files from the folder")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(path, f"cannot be opened: {exc.strerror or exc}", "check the path") from None
    if size == 0:
        raise InputError(path, "is empty (0 bytes)", REDOWNLOAD)
    rows = _read_excel(path) if suffix in EXCEL_SUFFIXES else _read_csv(path)
    return _with_header(path, rows)


# ------------------------------------------------------------------------------------------ Excel

def _read_excel(path: Path) -> pd.DataFrame:
    from python_calamine import CalamineWorkbook

    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"\xd0\xcf\x11\xe0") and path.suffix.lower() != ".xls":
        raise InputError(path, "is password-protected or not a real .xlsx file (it is an encrypted/OLE container)",
                         "remove the password in Excel (File → Info → Protect Workbook) or " + REDOWNLOAD)
    try:
        book = CalamineWorkbook.from_path(str(path))
        if not book.sheet_names:
            raise InputError(path, "has no worksheet", REDOWNLOAD)
        cells = book.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except InputError:
        raise
    except Exception as exc:  # calamine raises its own error types for broken/truncated/encrypted files
        detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InputError(path, f"cannot be opened as a workbook (truncated, damaged or password-protected: {detail})",
                         REDOWNLOAD) from None
    if not cells:
        return pd.DataFrame()
    frame = pd.DataFrame(cells, dtype=object)
    for col in frame.columns:
        frame[col] = _cells_to_text(frame[col])
    return frame


def _cells_to_text(col: pd.Series) -> pd.Series:
    """Excel cell values → the text they show, column-wise: numbers in bulk, other non-strings per cell."""
    arr = col.to_numpy(dtype=object)
    kind = pd.api.types.infer_dtype(arr, skipna=False)
    if kind in ("string", "empty"):
        return col
    if kind == "floating":
        return pd.Series(_floats_to_text(arr.astype(float)), index=col.index, dtype=object)
    is_str = np.fromiter((type(v) is str for v in arr), dtype=bool, count=len(arr))
    out = arr.copy()
    rest = arr[~is_str]
    if pd.api.types.infer_dtype(rest, skipna=False) == "floating":
        out[~is_str] = _floats_to_text(rest.astype(float))
    else:
        out[~is_str] = [_cell_text(v) for v in rest]
    return pd.Series(out, index=col.index, dtype=object)


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
    """BOM → utf-8-sig / utf-16; else UTF-8, then GB18030, then charset-normalizer's guess."""
    return _decode(path, data)[1]


def _decode(path: Path, data: bytes) -> tuple[str, str]:
    bom = next((e for b, e in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                               (codecs.BOM_UTF16_BE, "utf-16")) if data.startswith(b)), None)
    if bom is not None:
        try:
            return data.decode(bom), bom
        except UnicodeDecodeError:
            raise InputError(path, f"starts with a {bom} byte-order mark but is not valid {bom}",
                             "download it again, or open it in Excel and save it as CSV UTF-8") from None
    if b"\x00" in data[:4096]:
        raise InputError(path, "is not a text/CSV file (it contains binary data)",
                         "check the file type; " + REDOWNLOAD)
    for encoding in ("utf-8", "gb18030"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is not None and best.encoding:
        return str(best), best.encoding
    raise InputError(path, "cannot be decoded as text (neither UTF-8 nor GB18030)",
                     "download it again, or open it in Excel and save it as CSV UTF-8")


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
            frame = _read_csv_pandas(path, text, delim)
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


def _read_csv_pandas(path: Path, text: str, delim: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delim, header=None, dtype=str, keep_default_na=False,
                            na_filter=False, skip_blank_lines=True, engine="c")
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(path, f"is not a well-formed CSV file ({str(exc).strip()[:160]})",
                         "a row has more cells than the header: " + REDOWNLOAD) from None
    return frame.fillna("")


# ------------------------------------------------------------------------------------------ header

def _with_header(path: Path, rows: pd.DataFrame) -> pd.DataFrame:
    if rows.empty or rows.shape[1] == 0:
        raise InputError(path, "has no header row (the sheet is empty)", REDOWNLOAD)
    filled = np.zeros(len(rows), dtype=bool)
    for j in range(rows.shape[1]):  # column by column, only while rows are still empty (usually none after 序号)
        if filled.all():
            break
        filled |= rows.iloc[:, j].ne("").to_numpy(dtype=bool)
    if not filled.any():
        raise InputError(path, "has no header row (every cell is empty)", REDOWNLOAD)
    start = int(np.argmax(filled))
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


def per_unique(values, fn) -> np.ndarray:
    """fn applied once per distinct value, taken back to every row."""
    take, uniques = factorize(values)
    return np.array([fn(u) for u in uniques] + [None], dtype=object)[take]


def strings(values: np.ndarray):
    values = values.copy()
    values[values == ""] = None
    return pd.arrays.StringArray(values)


def parse_times(text: np.ndarray) -> np.ndarray:
    """`2024/07/05 14:22:55`, `2024-07-05 14:22:55` (fast formats first), anything else pandas can read; else NaT."""
    s = pd.Series(text)
    out = pd.to_datetime(s, format="%Y/%m/%d %H:%M:%S", errors="coerce")
    for fmt in ("%Y-%m-%d %H:%M:%S", "mixed"):
        bad = (out.isna() & s.ne("")).to_numpy()
        if not bad.any():
            break
        try:
            out[bad] = pd.to_datetime(s[bad], format=fmt, errors="coerce")
        except (ValueError, TypeError):  # e.g. time-zone offsets mixed with naive times: leave those NaT
            break
    return out.astype("datetime64[ns]").to_numpy()


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
