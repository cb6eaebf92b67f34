"""Build the small project root the unusual-input corpus starts from, and rewrite exports the way users do.

The base root is cut from the session's demo root (tests/conftest.py `demo_root`): the bundled configuration,
the parent questionnaire's 2024-needs downloads (按文本 + 按序号 xlsx, as the demo writes them) and the 2024Q4
按文本 download only (a GB18030 CSV). Two waves of one instrument are enough for every stage, the panel
comparison included, and keep a full `tongxing run` short. Cases copy the base and change one thing.

Everything here is deterministic: the same demo seed gives the same bytes.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import shutil
from pathlib import Path

Q4_CODED = "331954276_按序号_家长问卷_{n}_{n}.csv"
DEMO_ENCODING = "gb18030"  # the demo writes its second wave's downloads as GB18030 CSV


def make_base(demo_root: Path, dest: Path) -> Path:
    """config/ (without decisions) + parent exports of 2024-needs (both) and 2024Q4 (按文本 only)."""
    dest = Path(dest)
    shutil.copytree(demo_root / "config", dest / "config")
    (dest / "config" / "decisions.csv").unlink(missing_ok=True)
    shutil.copytree(demo_root / "data_raw" / "2024-needs" / "parent", dest / "data_raw" / "2024-needs" / "parent")
    q4 = dest / "data_raw" / "2024Q4" / "parent"
    q4.mkdir(parents=True)
    text = q4_export(demo_root, "text")
    shutil.copy2(text, q4 / text.name)
    return dest


def q4_export(root: Path, mode: str = "text") -> Path:
    """The demo's 2024Q4 parent download (按文本 or 按序号) under `root`."""
    word = "按文本" if mode == "text" else "按序号"
    hits = sorted((Path(root) / "data_raw" / "2024Q4" / "parent").glob(f"*_{word}_*.csv"))
    assert len(hits) == 1, hits
    return hits[0]


# ------------------------------------------------------------------------------------------ reading/writing

def read_csv(path: Path, encoding: str = DEMO_ENCODING) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a CSV export, every cell a string."""
    with open(path, encoding=encoding, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def csv_bytes(header: list[str], rows: list[list[str]], delimiter: str = ",") -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8-sig",
              delimiter: str = ",") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(csv_bytes(header, rows, delimiter).encode(encoding))
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list[object]]], merge: dict[str, str] | None = None) -> Path:
    """A workbook with the given sheets (in order): cells are written as their Python type — str as text,
    int/float as numbers, datetime as date-formatted numbers — so a case can say exactly what Excel holds."""
    import xlsxwriter

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    book = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "strings_to_formulas": False,
                                           "strings_to_urls": False})
    book.set_properties({"created": dt.datetime(2024, 6, 1)})
    when = book.add_format({"num_format": "yyyy/mm/dd hh:mm:ss"})
    for name, rows in sheets.items():
        sheet = book.add_worksheet(name)
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                if isinstance(value, dt.datetime):
                    sheet.write_datetime(i, j, value, when)
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    sheet.write_number(i, j, value)
                elif value not in (None, ""):
                    sheet.write_string(i, j, str(value))
        for cells in (merge or {}).get(name, []):
            first, last, text = cells
            sheet.merge_range(f"{first}:{last}", text)
    book.close()
    return path


def column(header: list[str], startswith: str) -> int:
    """Index of the one header that starts with `startswith` (`28、` → the phone column)."""
    hits = [i for i, h in enumerate(header) if h.startswith(startswith)]
    assert len(hits) == 1, (startswith, hits)
    return hits[0]


def excel_serial(text: str) -> float:
    """`2024/11/05 10:22:33` → the Excel (1900 system) serial number of that moment."""
    moment = dt.datetime.strptime(text, "%Y/%m/%d %H:%M:%S")
    return (moment - dt.datetime(1899, 12, 30)).total_seconds() / 86400


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` (to prove raw exports are never written)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def ole_bytes(size: int = 4096) -> bytes:
    """An OLE compound-file header, then filler: what an encrypted (password-protected) .xlsx starts with."""
    header = bytes.fromhex("D0CF11E0A1B11AE1") + bytes(16) + bytes.fromhex("3E000300FEFF0900")
    body = (b"EncryptionInfo\x00EncryptedPackage\x00" * 200)
    return (header + body)[:size].ljust(size, b"\x00")
