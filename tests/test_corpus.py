"""The unusual-input corpus: what a user can put in front of `tongxing`, and what it must do about it.

Every case copies one small root (tests/corpus/make.py: the parent questionnaire's 2024-needs downloads and
the 2024Q4 按文本 download, a GB18030 CSV), changes one thing the way users and platforms do, runs the CLI
in-process and states the outcome. There are two kinds of outcome (CONTRACT §2):

* ``Fails(path, what)`` — exit 2 (1 for a critical validation failure) and one stderr line
  ``error: <path relative to root>: <what is wrong> (<what to do>)``, no traceback;
* ``Repairs(check)`` — exit 0 and ``check`` holds: the documented repair happened (or was reported).

For every case the raw exports are byte-identical afterwards. Each case's docstring states its expected
outcome in one line, so the table doubles as documentation of how the pipeline treats odd inputs
(`pytest tests/test_corpus.py --collect-only -q` lists the ids). Most cases run `tongxing clean`
(ingest → clean → weight: every input problem shows there, in about a second); those about what gets
published run `tongxing run --lang zh`. A problem the corpus finds in a module it cannot fix is marked
`pytest.mark.xfail(strict=True, reason=<module and symptom>)` until that module is fixed.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from corpus.make import (Q4_CODED, column, csv_bytes, excel_serial, make_base, ole_bytes, q4_export, read_csv,
                         snapshot, write_csv, write_xlsx)

KEY = "test-key-not-secret"
Q4 = "data_raw/2024Q4/parent"
ERROR_LINE = re.compile(r"^error: (?P<path>[^:]+): (?P<what>.+) \((?P<hint>[^()]*(?:\([^()]*\)[^()]*)*)\)$")


# ------------------------------------------------------------------------------------------ machinery

@dataclass
class Fails:
    path: str               # the file or folder the message names, relative to the root (exact)
    what: str               # regex searched in "<what is wrong> (<what to do>)"
    code: int = 2
    command: str = "clean"  # "clean", "run" or "validate"
    args: tuple = ()


@dataclass
class Repairs:
    check: Callable         # check(case, stdout, stderr) -> None (asserts)
    command: str = "clean"
    args: tuple = ()


class Case:
    """The case's root and what a case needs to change it."""

    def __init__(self, root: Path, demo: Path, base: "Base"):
        self.root, self.demo, self.base = root, demo, base
        self.q4 = root / Q4
        self.text = q4_export(root)
        self._state = None

    def rows(self) -> tuple[list[str], list[list[str]]]:
        return read_csv(self.text)

    def replace(self, name: str | None = None) -> Path:
        """Remove the 2024Q4 按文本 CSV; the path a rewritten export should take (same name by default)."""
        self.text.unlink()
        return self.q4 / (name or self.text.name)

    def save(self, header, rows, name: str | None = None, encoding: str = "gb18030", delimiter: str = ","):
        return write_csv(self.replace(name), header, rows, encoding=encoding, delimiter=delimiter)

    def save_xlsx(self, sheets, name: str | None = None, merge=None):
        name = name or self.text.with_suffix(".xlsx").name
        return write_xlsx(self.replace(name), sheets, merge)

    def state(self):
        """The run state the CLI built (every table ingested, cleaned and weighted), for checks."""
        assert self._state is not None, "the CLI did not process any table"
        return self._state

    def q4_frame(self) -> pd.DataFrame:
        return ingested(self.root)


def ingested(root: Path, folder: str = Q4) -> pd.DataFrame:
    """RawResponses of one folder, without the columns that name the source file."""
    from pipelines.codebook import load_codebook
    from pipelines.ingest import ingest_folder

    book = load_codebook(root / "config" / "questionnaires" / "parent.xlsx")
    frame = ingest_folder(root / folder, book, root).frame
    return frame.drop(columns=["source_file"]).sort_values("platform_id", kind="stable").reset_index(drop=True)


@dataclass
class Base:
    root: Path
    q4: pd.DataFrame     # the 2024Q4 RawResponses of the unchanged root
    counts: dict         # (wave, instrument) -> "N rows read, E excluded, K kept"
    keys: pd.Series      # 2024Q4 respondent_key by response_id


@pytest.fixture(scope="session")
def base(demo_root, tmp_path_factory) -> Base:
    from pipelines import run as runner

    root = make_base(demo_root, tmp_path_factory.mktemp("corpus") / "base")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TONGXING_LINKAGE_KEY", KEY)
        state = runner.plan(root.resolve(), None)
        runner.process_tables(state)
    counts = {k: "{read} rows read, {excluded} excluded, {kept} kept".format(**t.clean.counts)
              for k, t in state.tables.items()}
    keys = state.tables[("2024Q4", "parent")].clean.frame.set_index("response_id")["respondent_key"]
    return Base(root, ingested(root), counts, keys)


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from pipelines.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


# ------------------------------------------------------------------------------------------ checks

def same_as_base(c: Case, out: str, err: str, ignore=()) -> None:
    """The 2024Q4 export reads exactly as the unchanged GB18030 CSV did, and cleans to the same counts."""
    same_counts(c, out, err)
    got, want = c.q4_frame(), c.base.q4
    pd.testing.assert_frame_equal(got.drop(columns=list(ignore)), want.drop(columns=list(ignore)))


def same_counts(c: Case, out: str, err: str) -> None:
    line = next((x for x in out.splitlines() if x.startswith("2024Q4/parent: ")), "")
    assert line.endswith(c.base.counts[("2024Q4", "parent")]), out


def published(c: Case, quarter: str = "2024Q4") -> Path:
    report = c.root / "reports" / quarter / "report.html"
    assert report.is_file()
    return c.root / "reports" / quarter / "tables"


# ------------------------------------------------------------------------------------------ cases

CASES: list = []


def case(case_id: str, expect, marks=()):
    def register(fn):
        CASES.append(pytest.param(fn, expect, id=case_id, marks=marks))
        return fn
    return register


# ---- encodings -------------------------------------------------------------------------------------------

@case("csv-utf8", Repairs(same_as_base))
def _(c):
    """A UTF-8 CSV without BOM reads the same as the GB18030 original."""
    c.save(*c.rows(), encoding="utf-8")


@case("csv-utf8-bom", Repairs(same_as_base))
def _(c):
    """A UTF-8 CSV with BOM (Excel's "CSV UTF-8") reads the same."""
    c.save(*c.rows(), encoding="utf-8-sig")


@case("csv-gbk", Repairs(same_as_base))
def _(c):
    """A GBK CSV (Excel's "CSV" on a Chinese Windows) reads the same."""
    c.save(*c.rows(), encoding="gbk")


def _rare_character(c, out, err):
    frame = c.q4_frame()
    assert frame.loc[0, "suggestion"] == "希望𠮷野家的孩子也来"
    pd.testing.assert_frame_equal(frame.drop(columns=["suggestion"]), c.base.q4.drop(columns=["suggestion"]))


@case("csv-gb18030-beyond-gbk", Repairs(_rare_character))
def _(c):
    """A GB18030 CSV with a character outside GBK (𠮷, 4 bytes) keeps it exactly."""
    header, rows = c.rows()
    rows[0][column(header, "30、")] = "希望𠮷野家的孩子也来"
    c.save(header, rows, encoding="gb18030")


@case("txt-utf16-tab", Repairs(same_as_base))
def _(c):
    """Excel's "Unicode text" (UTF-16 LE with BOM, tab-separated .txt) reads the same."""
    c.save(*c.rows(), name=c.text.with_suffix(".txt").name, encoding="utf-16", delimiter="\t")


@case("csv-utf16-comma", Repairs(same_as_base))
def _(c):
    """A UTF-16 CSV with BOM reads the same."""
    c.save(*c.rows(), encoding="utf-16")


@case("csv-utf16-no-bom", Repairs(same_as_base))
def _(c):
    """UTF-16 LE without a BOM (some converters) is recognised from its zero bytes and reads the same."""
    c.save(*c.rows(), encoding="utf-16-le")


@case("csv-undecodable-bytes", Fails("{text}",
                                      r"undecodable bytes at line \d+.*save it as CSV UTF-8"))
def _(c):
    """Bytes that are neither UTF-8 nor GB18030 (a damaged file) → error naming the line; no guessing."""
    header, rows = c.rows()
    data = csv_bytes(header, rows).encode("utf-8")
    cut = data.index(b"\r\n", len(data) // 2) + 2
    c.replace().write_bytes(data[:cut] + b"\x81\x20\xff\xfe" + data[cut:])


@case("csv-empty", Fails("{text}", r"empty \(0 bytes\).*download it again"))
def _(c):
    """A zero-byte CSV → error: empty, download it again."""
    c.replace().write_bytes(b"")


@case("csv-blank-lines", Fails("{text}", r"no header row.*download it again"))
def _(c):
    """A CSV of blank lines → error: no header row."""
    c.replace().write_bytes(b"\r\n \r\n\r\n")


# ---- workbooks -------------------------------------------------------------------------------------------

def _sheet(c) -> list[list[str]]:
    header, rows = c.rows()
    return [header, *rows]


@case("xlsx-zero-byte", Fails(f"{Q4}/x.xlsx", r"empty \(0 bytes\)"))
def _(c):
    """A zero-byte .xlsx → error: empty, download it again."""
    c.replace("x.xlsx").write_bytes(b"")


@case("xlsx-truncated", Fails(f"{Q4}/x.xlsx", r"cannot be opened as a workbook.*truncated.*download it again"))
def _(c):
    """A workbook cut off half-way (interrupted download) → error: truncated or damaged, download again."""
    full = write_xlsx(c.root / "full.xlsx", {"Sheet1": _sheet(c)})
    data = full.read_bytes()
    full.unlink()
    c.replace("x.xlsx").write_bytes(data[: len(data) // 2])


@case("xlsx-garbage", Fails(f"{Q4}/x.xlsx", r"cannot be opened as a workbook"))
def _(c):
    """Random bytes named .xlsx → error: cannot be opened as a workbook."""
    c.replace("x.xlsx").write_bytes(np.random.default_rng(1).bytes(5000))


@case("xlsx-password", Fails(f"{Q4}/x.xlsx", r"password-protected.*remove the password.*save it"))
def _(c):
    """A password-protected .xlsx (an encrypted OLE container) → error: protected, save it without a password."""
    c.replace("x.xlsx").write_bytes(ole_bytes())


@case("xls-password", Fails(f"{Q4}/x.xls", r"password-protected.*(remove the password|download it again)"))
def _(c):
    """An encrypted/unreadable .xls (OLE, not a workbook calamine can open) → error: protected or damaged."""
    c.replace("x.xls").write_bytes(ole_bytes())


def _files(c: Case) -> list[dict]:
    """What ingest records about each 2024Q4 file (it goes to manifest.json)."""
    from pipelines.codebook import load_codebook
    from pipelines.ingest import ingest_folder
    book = load_codebook(c.root / "config" / "questionnaires" / "parent.xlsx")
    return ingest_folder(c.q4, book, c.root).files


def _second_sheet(c, out, err):
    same_as_base(c, out, err)
    assert _files(c)[0]["sheet"] == "答卷数据"


def _title_skipped(c, out, err):
    same_as_base(c, out, err)
    assert _files(c)[0]["header_row"] == 2


@case("xlsx-answers-on-second-sheet", Repairs(_second_sheet))
def _(c):
    """First sheet a summary (统计), answers on the second → the sheet whose header a platform recognises is read."""
    c.save_xlsx({"统计": [["问卷", "家长问卷"], ["答卷数", str(len(c.base.q4))]], "答卷数据": _sheet(c)})


@case("xlsx-empty-first-sheet", Repairs(same_as_base))
def _(c):
    """An empty Sheet1 and the answers on Sheet2 (pasted into a new workbook) → the answer sheet is read."""
    c.save_xlsx({"Sheet1": [], "Sheet2": _sheet(c)})


@case("xlsx-extra-sheets", Repairs(same_as_base))
def _(c):
    """Answers on the first sheet, then extra sheets (统计, an empty one) → only the answers are read."""
    c.save_xlsx({"Sheet1": _sheet(c), "统计": [["答卷数", len(c.base.q4)]], "Sheet3": []})


@case("xlsx-title-row-merged", Repairs(_title_skipped))
def _(c):
    """A merged title row above the real header → the title row is skipped, the answers read the same."""
    sheet = _sheet(c)
    c.save_xlsx({"Sheet1": [[""] * len(sheet[0]), *sheet]}, merge={"Sheet1": [("A1", "H1", "家长问卷 答卷数据")]})


@case("csv-title-row", Repairs(_title_skipped))
def _(c):
    """A CSV saved from such a sheet (`家长问卷 答卷数据,,,…` above the header) → the title line is skipped."""
    header, rows = c.rows()
    c.save(header, [header, *rows], encoding="utf-8-sig")
    data = c.text.read_bytes()
    c.text.write_bytes(data.replace(",".join(header).encode("utf-8"),
                                    ("家长问卷 答卷数据" + "," * (len(header) - 1)).encode("utf-8"), 1))


def _times_as_base(c, out, err):
    got = c.q4_frame()["submitted_at"]
    want = c.base.q4["submitted_at"]
    assert got.notna().all()
    assert (got - want).abs().max() <= pd.Timedelta(seconds=1)
    same_counts(c, out, err)


@case("xlsx-date-cells", Repairs(_times_as_base))
def _(c):
    """提交答卷时间 as date-formatted Excel cells → the same timestamps."""
    sheet = _sheet(c)
    for row in sheet[1:]:
        row[1] = pd.Timestamp(row[1].replace("/", "-")).to_pydatetime()
    c.save_xlsx({"Sheet1": sheet})


@case("xlsx-date-serials", Repairs(_times_as_base))
def _(c):
    """提交答卷时间 as bare Excel serial numbers (45601.33799, format General) → the right timestamps."""
    sheet = _sheet(c)
    for row in sheet[1:]:
        row[1] = excel_serial(row[1])
    c.save_xlsx({"Sheet1": sheet})


@case("csv-date-serials", Repairs(_times_as_base))
def _(c):
    """A CSV re-saved from such a sheet (`45601.33799` text) → the right timestamps."""
    header, rows = c.rows()
    for row in rows:
        row[1] = f"{excel_serial(row[1]):.10f}".rstrip("0")
    c.save(header, rows, encoding="utf-8-sig")


# ---- phone numbers ---------------------------------------------------------------------------------------

def _keys(c: Case) -> pd.DataFrame:
    frame = c.state().tables[("2024Q4", "parent")].clean.frame
    return frame.set_index("response_id")[["respondent_key", "review_flag"]]


def _same_keys(c, out, err):
    same_counts(c, out, err)
    pd.testing.assert_series_equal(_keys(c)["respondent_key"], c.base.keys)


@case("xlsx-phone-number-cells", Repairs(_same_keys))
def _(c):
    """Phones stored as numbers in the workbook (13812345678.0) → never 1.38e+10: the same respondent keys."""
    sheet = _sheet(c)
    j = column(sheet[0], "28、")
    for row in sheet[1:]:
        row[j] = int(row[j]) if row[j].isdigit() else row[j]
    c.save_xlsx({"Sheet1": sheet})


@case("csv-phone-scientific-full", Repairs(_same_keys))
def _(c):
    """`1.3812345678E+10` (scientific notation, all 11 digits kept) → the same respondent keys."""
    header, rows = c.rows()
    j = column(header, "28、")
    for row in rows:
        if row[j].isdigit():
            row[j] = f"{int(row[j]):.10E}"
    c.save(header, rows, encoding="utf-8-sig")


def _truncated_not_linked(c, out, err):
    same_counts(c, out, err)
    keys = _keys(c)
    bad = keys.loc[keys.index.str.endswith(("-1", "-2", "-3"))]
    # digits lost to `1.38123E+10` cannot identify anyone: no key made from 13812300000, and the row says so
    assert ((bad["respondent_key"].fillna("") == "") | (bad["review_flag"].fillna("") != "")).all(), bad
    assert (bad["respondent_key"].fillna("") == "").all(), "a key was made from a truncated phone number"


@case("csv-phone-scientific-truncated", Repairs(_truncated_not_linked))
def _(c):
    """`1.56444E+10` (Excel showed 6 digits and the CSV kept only those) → not linked (no key), not a wrong key."""
    header, rows = c.rows()
    j = column(header, "28、")
    for row in rows[:3]:
        row[j] = f"{int(row[j]):.5E}"
    c.save(header, rows, encoding="utf-8-sig")


@case("phone-formatted", Repairs(_same_keys))
def _(c):
    """Phones typed as `+86 138-1234-5678` → normalised to the same respondent keys."""
    header, rows = c.rows()
    j = column(header, "28、")
    for row in rows:
        if len(row[j]) == 11:
            row[j] = f"+86 {row[j][:3]}-{row[j][3:7]}-{row[j][7:]}"
    c.save(header, rows)


# ---- headers ---------------------------------------------------------------------------------------------

@case("duplicate-header-identical", Repairs(same_as_base))
def _(c):
    """A question column present twice with the same answers (copied in Excel) → read once."""
    header, rows = c.rows()
    j = column(header, "3、")
    c.save(header + [header[j]], [r + [r[j]] for r in rows])


@case("duplicate-header-conflicting", Fails("{text}",
                                             r"“3、您的性别” appears twice .* different answers, "
                                             r"e\.g\. in row 1 \(line 2 of the file\).*delete one"))
def _(c):
    """Two columns headed `3、您的性别` with different answers → error: which one is right is unknowable."""
    header, rows = c.rows()
    j = column(header, "3、")
    flip = {"男": "女", "女": "男"}
    c.save(header + [header[j]], [r + [flip.get(r[j], r[j])] for r in rows])


@case("question-numbers-stripped", Repairs(same_as_base))
def _(c):
    """Headers without their numbers (`您的性别` for `3、您的性别`, an older template) → matched by text."""
    header, rows = c.rows()
    c.save([re.sub(r"^\d+、", "", h) for h in header], rows)


@case("wjx-time-column-deleted", Fails("{text}", r"问卷星 download whose 提交答卷时间 column was deleted"
                                                r".*download the answers again"))
def _(c):
    """提交答卷时间 deleted by hand → the file is no longer recognisable: error, download it again unedited."""
    header, rows = c.rows()
    j = header.index("提交答卷时间")
    c.save(header[:j] + header[j + 1:], [r[:j] + r[j + 1:] for r in rows])


@case("columns-reordered", Repairs(same_as_base))
def _(c):
    """Columns in another order (a different download template) → matched by header, read the same."""
    header, rows = c.rows()
    order = list(range(6)) + list(range(len(header) - 1, 5, -1))
    c.save([header[i] for i in order], [[r[i] for i in order] for r in rows])


@case("renamed-option-text", Fails("{text}",
                                    r"row \d+ \(line \d+ of the file\), 第2题 'relation'.*“妈妈” is not one of "
                                    r"its options.*renamed option"))
def _(c):
    """An option renamed on the platform (母亲 → 妈妈) in a 按文本 download → error naming row, question, text."""
    header, rows = c.rows()
    j = column(header, "2、")
    c.save(header, [[*r[:j], "妈妈" if r[j] == "母亲" else r[j], *r[j + 1:]] for r in rows])


def _extra_column(c, out, err):
    same_as_base(c, out, err)
    assert _files(c)[0]["unmatched"] == ["备注"]


@case("extra-unknown-column", Repairs(_extra_column))
def _(c):
    """An extra column (备注, typed by the evaluator) → ignored and listed as unmatched for the manifest."""
    header, rows = c.rows()
    c.save(header + ["备注"], [r + ["已电话回访" if i % 7 == 0 else ""] for i, r in enumerate(rows)])


@case("missing-required-column", Fails("{text}",
                                        r"缺少第5题 “您家的户籍情况”.*'hukou'.*download the export"))
def _(c):
    """A required question's column deleted → error: 缺少第5题, download again or fix the codebook."""
    header, rows = c.rows()
    j = column(header, "5、")
    c.save(header[:j] + header[j + 1:], [r[:j] + r[j + 1:] for r in rows])


@case("required-question-renamed", Fails("{text}",
                                          r"缺少第5题 “您家的户籍情况”.*fix the codebook"))
def _(c):
    """A required question reworded beyond recognition (户籍情况 → 户口类型) → error: 缺少第5题."""
    header, rows = c.rows()
    header[column(header, "5、")] = "5、户口类型"
    c.save(header, rows)


@case("question-text-edited-slightly", Repairs(same_as_base))
def _(c):
    """A question's text touched up (`您家的户籍情况` → `您家的户籍情况是：`) → still matched, read the same."""
    header, rows = c.rows()
    header[column(header, "5、")] = "5、您家的户籍情况是："
    c.save(header, rows)


@case("questionnaire-renumbered-mid-year", Repairs(same_as_base))
def _(c):
    """A question inserted as 第3题 mid-year (all later numbers +1) → matched by text; the new one unmatched."""
    header, rows = c.rows()

    def bump(h):
        m = re.match(r"^(\d+)、(.*)$", h)
        return h if not m or int(m.group(1)) < 3 else f"{int(m.group(1)) + 1}、{m.group(2)}"
    at = column(header, "3、")
    new = [bump(h) for h in header]
    new.insert(at, "3、您是否愿意接受回访？")
    c.save(new, [r[:at] + ["是"] + r[at:] for r in rows])


# ---- several files ---------------------------------------------------------------------------------------

@case("same-file-twice", Repairs(same_counts))
def _(c):
    """The same download saved twice under two names → each response counted once."""
    shutil.copy2(c.text, c.q4 / f"{c.text.stem} (1).csv")


def _union(c, out, err):
    same_counts(c, out, err)
    got = c.q4_frame().drop(columns=["source_row"])
    want = c.base.q4.drop(columns=["source_row"])
    assert len(got) == len(want)
    pd.testing.assert_frame_equal(got[want.columns], want)


@case("text-and-coded-different-sizes", Repairs(_union))
def _(c):
    """A full 按文本 and a 200-row 按序号 download → joined on 序号: every response once, the coded answers win."""
    coded = q4_export(c.demo, "coded")
    header, rows = read_csv(coded)
    write_csv(c.q4 / Q4_CODED.format(n=200), header, rows[:200], encoding="utf-8-sig")


@case("two-questionnaires-in-one-folder", Fails("{child}",
                                                 r"缺少第\d+题.*looks like the download of another "
                                                 r"questionnaire.*move it to the folder"))
def _(c):
    """The child questionnaire's download dropped into parent/ → error naming that file."""
    child = sorted((c.demo / "data_raw" / "2024Q4" / "child").glob("*按文本*"))[0]
    shutil.copy2(child, c.q4 / child.name)


@case("unknown-instrument-folder", Fails("data_raw/2024Q4/parents", r"'parents' is not a questionnaire.*parent"))
def _(c):
    """An instrument folder named `parents` → error: not a questionnaire; folders are named after the workbooks."""
    shutil.copytree(c.q4, c.root / "data_raw" / "2024Q4" / "parents")


@case("wave-folder-not-declared", Fails("data_raw/2024Q3", r"not (a|one of the) (declared )?wave.*config/project.toml"))
def _(c):
    """data_raw/2024Q3/ (no such wave in config) → error: not a declared wave, declare it or rename the folder."""
    shutil.copytree(c.q4, c.root / "data_raw" / "2024Q3" / "parent")


@case("empty-instrument-folder", Fails("data_raw/2024Q4/child", r"has no export files.*downloads"))
def _(c):
    """An instrument folder created ahead of time but still empty → error: no export files, add them."""
    (c.root / "data_raw" / "2024Q4" / "child").mkdir()


@case("lock-and-system-files-ignored", Repairs(same_as_base))
def _(c):
    """Excel's lock file `~$….xlsx`, `.DS_Store`, `Thumbs.db` and a README beside the exports → ignored."""
    (c.q4 / f"~${c.text.stem}.xlsx").write_bytes(b"\x0bEvaluator" + bytes(150))
    (c.q4 / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
    (c.q4 / "Thumbs.db").write_bytes(ole_bytes(512))
    (c.q4 / "README.txt").write_text("下载于2024年12月31日\n", encoding="utf-8")


@case("docx-in-folder", Fails(f"{Q4}/问卷说明.docx", r"not a spreadsheet \(\.docx\).*remove other files"))
def _(c):
    """A Word document beside the exports → error: not a spreadsheet, remove it from the folder."""
    (c.q4 / "问卷说明.docx").write_bytes(b"PK\x03\x04" + bytes(200))


@case("pdf-in-folder", Fails(f"{Q4}/统计报告.pdf", r"not a spreadsheet \(\.pdf\).*remove other files"))
def _(c):
    """问卷星's PDF report beside the exports → error: not a spreadsheet, remove it from the folder."""
    (c.q4 / "统计报告.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + bytes(200))


@case("zip-in-folder", Fails(f"{Q4}/问卷星下载.zip", r"compressed archive \(\.zip\).*unzip it"))
def _(c):
    """The platform's zipped download left beside (or instead of) the exports → error: unzip it here."""
    (c.q4 / "问卷星下载.zip").write_bytes(b"PK\x05\x06" + bytes(18))


@case("exports-in-a-subfolder", Fails(f"{Q4}/12月补录", r"folder inside an instrument folder.*move the downloads"))
def _(c):
    """Downloads inside a subfolder of parent/ (12月补录/) → error: they would be skipped, move them up."""
    (c.q4 / "12月补录").mkdir()
    shutil.copy2(c.text, c.q4 / "12月补录" / "补录.csv")


@case("txt-notes-in-folder", Fails(f"{Q4}/下载说明.txt", r"not an export of a known platform.*(move|remove)"))
def _(c):
    """A note (下载说明.txt) beside the exports → error: not an export, move it out of the folder."""
    (c.q4 / "下载说明.txt").write_text("本文件夹为2024年第四季度家长问卷\n下载人：社工小王\n", encoding="utf-8")


@case("coded-unknown-code", Fails("{coded}",
                                   r"第5题 'hukou'.*“7” is not one of its options"))
def _(c):
    """A 按序号 download with option number 7 for a 2-option question → error naming row and question."""
    coded = q4_export(c.demo, "coded")
    header, rows = read_csv(coded)
    rows[3][column(header, "5、")] = "7"
    write_csv(c.q4 / coded.name, header, rows, encoding="gb18030")


@case("platform-file-unknown", Fails(f"{Q4}/platform.txt", r"names platform 'wenjuanxing'.*write just the platform"))
def _(c):
    """platform.txt naming an unknown platform → error listing the known ones."""
    (c.q4 / "platform.txt").write_text("wenjuanxing\n", encoding="utf-8")


# ---- waves and respondents -------------------------------------------------------------------------------

def _without_child_q4(c, out, err):
    tables = published(c)
    estimates = pd.read_csv(tables / "estimates.csv")
    assert set(estimates.loc[estimates["instrument"] == "child", "wave"]) == {"2024-needs"}
    assert set(estimates.loc[estimates["instrument"] == "parent", "wave"]) == {"2024-needs", "2024Q4"}


@case("instrument-missing-for-a-quarter", Repairs(_without_child_q4, "run", ("--lang", "zh")))
def _(c):
    """child answered in 2024-needs but not in 2024Q4 → 2024Q4 publishes without child (its baseline stays)."""
    shutil.copytree(c.demo / "data_raw" / "2024-needs" / "child", c.root / "data_raw" / "2024-needs" / "child")


def _zero(c, out, err):
    tables = published(c)
    funnel = pd.read_csv(tables / "funnel.csv").query("wave == '2024Q4'")
    assert funnel.set_index("rule")["rows"].to_dict() == {"read": 0, "kept": 0}
    assert re.search(r"warning: 2024Q4/parent: no responses", err), err
    report = (c.root / "reports" / "2024Q4" / "report.html").read_text(encoding="utf-8")
    assert "共收回有效问卷 0 份" in report
    assert "本季度没有读入任何问卷" in report and "全部保留" not in report  # not "0 read, all kept"
    outcomes = pd.read_csv(tables / "outcomes.csv")
    assert outcomes.loc[outcomes["post_wave"] == "2024Q4", "suppressed"].all()


@case("zero-responses", Repairs(_zero, "run", ("--lang", "zh")))
def _(c):
    """A download with the header and no answers → publishes, says 0 responses (warning, funnel, report)."""
    header, _rows = c.rows()
    c.save(header, [])


def _all_excluded(c, out, err):
    tables = published(c)
    funnel = pd.read_csv(tables / "funnel.csv").query("wave == '2024Q4'").set_index("rule")["rows"]
    n = len(c.base.q4)
    assert funnel.to_dict() == {"read": n, "test_response": n, "kept": 0}
    exclusions = pd.read_csv(c.root / "data_clean" / "2024Q4" / "exclusions.csv")
    assert len(exclusions) == n and set(exclusions["rule"]) == {"test_response"}
    assert re.search(r"warning: 2024Q4/parent: no responses", err), err
    assert "保留 0 份" in (c.root / "reports" / "2024Q4" / "report.html").read_text(encoding="utf-8")


@case("every-response-excluded", Repairs(_all_excluded, "run", ("--lang", "zh")))
def _(c):
    """Every 2024Q4 response a test (姓名 “测试”) → publishes; exclusions.csv lists every row; the report says 0 kept."""
    header, rows = c.rows()
    j = column(header, "27、")
    c.save(header, [[*r[:j], "测试", *r[j + 1:]] for r in rows])


def _no_pairs(c, out, err):
    outcomes = pd.read_csv(published(c) / "outcomes.csv")
    panel = outcomes[outcomes["scope"] == "panel"]
    assert len(panel) and panel["suppressed"].all()
    assert panel["n_pairs"].fillna(0).eq(0).all() and panel["p_value"].isna().all()
    cross = outcomes[outcomes["scope"] == "cross_section"]
    assert len(cross) and not cross["suppressed"].all()


@case("panel-keys-never-match", Repairs(_no_pairs, "run", ("--lang", "zh")))
def _(c):
    """Every 2024Q4 phone new (no one answered twice) → panel rows suppressed with no pairs; cross-section stands."""
    header, rows = c.rows()
    j = column(header, "28、")
    c.save(header, [[*r[:j], f"199{i:08d}", *r[j + 1:]] for i, r in enumerate(rows)])


# ---- configuration -------------------------------------------------------------------------------------

def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, count), encoding="utf-8")


TOML = "config/project.toml"


@case("config-unknown-compound", Fails(TOML, r"margins\.compound: unknown compound id\(s\) yulu_garden.*use the ids"))
def _(c):
    """A margin names a compound that is not in [[compounds]] → error naming the key and the known ids."""
    _edit(c.root / TOML, "yulu = 151", "yulu_garden = 151")


@case("config-margins-do-not-add-up", Fails(TOML, r"margins\.hukou: adds up to 2090, not the population total 2100"))
def _(c):
    """A margin whose levels do not add up to the population total → error naming the margin and both sums."""
    _edit(c.root / TOML, "registered = 1610", "registered = 1600")


@case("config-wave-outside-service-year", Fails(TOML, r"waves\[5\]: wave 2025Q4 .* outside the service year"))
def _(c):
    """A quarterly wave ending after service_end → error naming the wave and the service year."""
    q4 = 'label_zh = "2025年第四季度"'
    _edit(c.root / TOML, f"end = 2025-10-31\n{q4}", f"end = 2025-12-31\n{q4}")


@case("config-broken-toml", Fails(TOML, r"not valid TOML.*line \d+.*fix the syntax"))
def _(c):
    """project.toml with a syntax error (an unclosed table header) → error with the line."""
    _edit(c.root / TOML, "[thresholds]", "[thresholds")


@case("config-saved-with-bom", Repairs(same_counts))
def _(c):
    """project.toml saved by Notepad (UTF-8 with BOM) → read as UTF-8."""
    path = c.root / TOML
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())


@case("config-saved-as-gbk", Fails(TOML, r"is not UTF-8 text.*save it as UTF-8"))
def _(c):
    """project.toml saved as GBK (ANSI on Chinese Windows) → error: save it as UTF-8."""
    path = c.root / TOML
    path.write_bytes(path.read_text(encoding="utf-8").encode("gb18030"))


@case("config-duplicate-wave", Fails(TOML, r"waves\[2\]\.id: duplicate wave id '2024Q4'"))
def _(c):
    """A wave block copied and not renamed (two 2024Q4) → error naming the second."""
    _edit(c.root / TOML, 'id = "2025Q1"', 'id = "2024Q4"')


@case("config-missing", Fails(TOML, r"configuration file not found.*tongxing demo"))
def _(c):
    """No config/project.toml → error: not found, how to get one."""
    (c.root / TOML).unlink()


@case("config-unknown-quarter", Fails(TOML, r"no wave belongs to quarter 2023Q1.*quarters with waves",
                                      args=("--quarter", "2023Q1")))
def _(c):
    """`--quarter 2023Q1` (no such wave) → error listing the quarters there are."""


@case("data-raw-empty", Fails("data_raw", r"holds no survey exports"))
def _(c):
    """data_raw/ without any export → error: put the downloads in data_raw/<wave>/<instrument>/."""
    shutil.rmtree(c.root / "data_raw")
    (c.root / "data_raw").mkdir()


def _edit_book(c: Case, instrument: str, sheet: str, edit) -> None:
    from openpyxl import load_workbook
    path = c.root / "config" / "questionnaires" / f"{instrument}.xlsx"
    book = load_workbook(path)
    edit(book[sheet])
    book.save(path)


def _find(ws, col: str, value: str) -> int:
    header = [c.value for c in ws[1]]
    j = header.index(col)
    for i, row in enumerate(ws.iter_rows(min_row=2, values_only=True), start=2):
        if str(row[j]) == value:
            return i
    raise AssertionError(value)


def _set_question(c: Case, name: str, column: str, value: str) -> None:
    """Set one cell of the parent survey sheet: `column` of the question called `name`."""
    def edit(ws):
        ws.cell(_find(ws, "name", name), [x.value for x in ws[1]].index(column) + 1, value)
    _edit_book(c, "parent", "survey", edit)


BOOK = "config/questionnaires/parent.xlsx"


@case("codebook-broken-choice-list", Fails(BOOK, r"choices sheet row \d+: list 'hukou' has code 3 where 2 was expected"))
def _(c):
    """A choice list numbered 1, 3 (an option deleted in the workbook) → error naming sheet, row and list."""
    def edit(ws):
        j = [x.value for x in ws[1]].index("list_name")
        rows = [i for i, row in enumerate(ws.iter_rows(min_row=2, values_only=True), start=2) if row[j] == "hukou"]
        ws.cell(rows[1], [x.value for x in ws[1]].index("name") + 1, 3)
    _edit_book(c, "parent", "choices", edit)


@case("codebook-missing-list", Fails(BOOK, r"survey sheet row \d+: choice list 'hukou_type' of question 'hukou' "
                                           r"is not in the choices sheet"))
def _(c):
    """A question whose choice list does not exist (select_one hukou_type) → error naming row and list."""
    _set_question(c, "hukou", "type", "select_one hukou_type")


@case("codebook-bad-relevant", Fails(BOOK, r"survey sheet row \d+: .*(relevant|expression|parse|syntax).*docs/codebook.md"))
def _(c):
    """A relevant expression that does not parse (`${child_age} >=`) → error naming the row."""
    _set_question(c, "after_school", "relevant", "${child_age} >= ")


@case("codebook-unknown-type", Fails(BOOK, r"survey sheet row \d+: unknown question type 'select_once hukou'"))
def _(c):
    """A misspelt question type (select_once) → error naming the row and the allowed types."""
    _set_question(c, "hukou", "type", "select_once hukou")


@case("codebook-missing-workbook", Fails("config/questionnaires/child.xlsx", r"questionnaire workbook not found"))
def _(c):
    """child.xlsx deleted → error: the parent, child and community instruments always exist."""
    (c.root / "config" / "questionnaires" / "child.xlsx").unlink()


@case("codebook-not-a-workbook", Fails(BOOK, r"cannot be read as a workbook.*save it again"))
def _(c):
    """parent.xlsx damaged (not a zip) → error: cannot be read, save it again as .xlsx."""
    (c.root / BOOK).write_bytes(b"this is not a workbook")


DECISIONS = "config/decisions.csv"


@case("decisions-bad-action", Fails(DECISIONS, r"row 2: unknown action 'delete'.*use keep, drop or set"))
def _(c):
    """decisions.csv with action `delete` → error naming the row and the allowed actions."""
    (c.root / DECISIONS).write_text("response_id,action,column,value,reason\n2024Q4-parent-5,delete,,,重复\n",
                                    encoding="utf-8")


@case("decisions-missing-reason", Fails(DECISIONS, r"row 2: a decision needs a reason"))
def _(c):
    """A decision without a reason → error: write why."""
    (c.root / DECISIONS).write_text("response_id,action,column,value,reason\n2024Q4-parent-5,drop,,,\n",
                                    encoding="utf-8")


def _decision_applied(c, out, err):
    frame = c.state().tables[("2024Q4", "parent")].clean
    rules = frame.exclusions.set_index("response_id")["rule"]
    assert rules.get("2024Q4-parent-5") == "decision_drop", "the drop decision was not applied"


@case("decisions-saved-by-excel-as-gbk", Repairs(_decision_applied))
def _(c):
    """decisions.csv saved by Excel as GBK (its default “CSV”) → read like the UTF-8 file; the decision applies."""
    (c.root / DECISIONS).write_bytes("response_id,action,column,value,reason\r\n2024Q4-parent-5,drop,,,重复填写\r\n"
                                     .encode("gbk"))


@case("decisions-critical-failure", Fails("", r"hukou", code=1, command="validate"))
def _(c):
    """A decision that sets an impossible code (hukou = 7) → exit 1: critical validation failure, nothing published."""
    (c.root / DECISIONS).write_text("response_id,action,column,value,reason\n2024Q4-parent-1,set,hukou,7,录入\n",
                                    encoding="utf-8")


# ------------------------------------------------------------------------------------------ the test

@pytest.mark.parametrize("setup, expect", CASES)
def test_corpus(setup, expect, base, demo_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TONGXING_LINKAGE_KEY", KEY)
    root = tmp_path / "root"
    shutil.copytree(base.root, root)
    c = Case(root, demo_root, base)
    setup(c)
    from pipelines import run as runner
    process_tables = runner.process_tables

    def keep_state(state, *args, **kwargs):  # the CLI's own run state, for the checks (no second run)
        c._state = state
        return process_tables(state, *args, **kwargs)
    monkeypatch.setattr(runner, "process_tables", keep_state)
    raw_before = snapshot(root / "data_raw")
    names = {"text": c.text, "coded": q4_export(demo_root, "coded"),
             "child": sorted((demo_root / "data_raw" / "2024Q4" / "child").glob("*按文本*"))[0]}
    code, out, err = cli([expect.command, "--root", str(root), *expect.args], capsys)
    assert "Traceback" not in err and "internal error" not in err, err
    assert snapshot(root / "data_raw") == raw_before, "a raw export was written"
    if isinstance(expect, Fails):
        assert code == expect.code, (code, err)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, err
        if expect.path:
            m = ERROR_LINE.match(errors[0])
            assert m, f"not `error: <path>: <what> (<what to do>)`: {errors[0]}"
            path = expect.path.format(**{k: f"{Q4}/{v.name}" for k, v in names.items()})
            assert m["path"] == path, errors[0]
        assert re.search(expect.what, errors[0]), errors[0]
        assert not (root / "reports").exists() or not any((root / "reports").rglob("report.html"))
    else:
        assert code == 0, err
        expect.check(c, out, err)


def test_corpus_is_large_enough():
    assert len(CASES) >= 40
    for param in CASES:
        assert (param.values[0].__doc__ or "").strip(), f"{param.id} states no expected outcome"
