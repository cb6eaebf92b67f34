"""Paper questionnaires typed into Excel: an entry workbook generated from the codebook, and its reader.

The workbook's entry sheet uses the same columns as a 问卷星 按序号 download (one column per question,
one per multi-select option or ranking item), with drop-down lists that show "code label" and range checks,
so volunteers pick from lists instead of typing codes. Reading it back strips the labels and hands the codes
to the 问卷星 coded reader: one parser for both, so paper and online answers mean the same thing.
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook, load_codebooks
from pipelines.config import load_config
from pipelines.errors import ConfigError

PLATFORM = "paper"
ENTRY_SHEET = "问卷录入"
META = ["录入编号", "填写日期", "录入人"]
WJX_NAMES = {"录入编号": "序号", "填写日期": "提交答卷时间", "录入人": "来源详情"}
CODE_PREFIX = re.compile(r"^\s*(-?\d+)\s*[.、:：\s]")
YES_NO = ["1 是（选了）", "0 否（没选）"]
INSTRUCTIONS = [
    "纸质问卷录入说明",
    "1. 每一份纸质问卷录入一行；“录入编号”写在纸质问卷右上角，不要重复。",
    "2. 单选题：点单元格右侧的下拉箭头，选择“编号 选项”。",
    "3. 多选题：每个选项一列，选了的填“1 是”，没选的填“0 否”；整题没有作答就全部留空。",
    "4. 排序题：每个项目一列，填它排在第几位（1、2、3…），没有排的留空。",
    "5. 数字题（如年龄）只填数字，超出范围时 Excel 会提示。",
    "6. 因跳题而不需要回答的题目留空即可，系统会按问卷逻辑识别。",
    "7. 姓名、电话只用于追踪回访，不会出现在任何报告中；录入完成后请将纸质问卷锁柜保管。",
    "8. 保存后把本文件放到 data_raw/<轮次>/<问卷>/ 文件夹中，与问卷星下载的文件放在一起。",
]


def entry_headers(book: Codebook) -> list[str]:
    """The question columns: exactly those of a 问卷星 按序号 download of this questionnaire."""
    from pipelines.demo.wjx_export import META_HEADERS, wjx_table

    headers, _ = wjx_table(pd.DataFrame(), book, mode="coded")
    return headers[len(META_HEADERS):]


def write_template(root: str | Path, instrument: str, out_dir: str | Path) -> Path:
    import xlsxwriter

    root = Path(root)
    books = load_codebooks(load_config(root).questionnaire_dir)
    if instrument not in books:
        raise ConfigError(root / "config" / "questionnaires", f"no questionnaire '{instrument}'",
                          f"choose one of {', '.join(sorted(books))}")
    book = books[instrument]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"纸质问卷录入表_{instrument}_{book.version or 'v'}.xlsx"
    wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False})
    wb.set_properties({"created": dt.datetime(2024, 6, 1), "title": f"{book.title} 纸质问卷录入表"})
    head = wb.add_format({"bold": True, "text_wrap": True, "valign": "top", "bg_color": "#E8F0FE", "border": 1})
    sheet = wb.add_worksheet(ENTRY_SHEET)
    lists = wb.add_worksheet("选项")
    guide = wb.add_worksheet("说明")
    for i, line in enumerate(INSTRUCTIONS):
        guide.write(i, 0, line, head if i == 0 else None)
    guide.set_column(0, 0, 100)
    headers = META + entry_headers(book)
    for j, text in enumerate(headers):
        sheet.write_string(0, j, text, head)
        sheet.set_column(j, j, 14 if j >= len(META) else 12)
    sheet.set_row(0, 60)
    sheet.freeze_panes(1, 1)
    sheet.data_validation(1, 1, 2000, 1, {"validate": "date", "criteria": ">", "value": dt.date(2024, 1, 1),
                                          "input_message": "填写日期，如 2025-03-15"})
    list_col = 0
    for j, (header, spec) in enumerate(zip(headers[len(META):], _column_specs(book)), start=len(META)):
        kind, payload = spec
        if kind == "choice":
            for i, label in enumerate(payload):
                lists.write_string(i, list_col, label)
            col_letter = xlsxwriter.utility.xl_col_to_name(list_col)
            sheet.data_validation(1, j, 2000, j, {"validate": "list",
                                                  "source": f"='选项'!${col_letter}$1:${col_letter}${len(payload)}",
                                                  "error_message": "请从下拉列表中选择"})
            list_col += 1
        elif kind == "range":
            lo, hi = payload
            sheet.data_validation(1, j, 2000, j, {"validate": "decimal", "criteria": "between", "minimum": lo,
                                                  "maximum": hi, "error_message": f"请填写 {lo:g}–{hi:g} 之间的数字"})
    lists.hide()
    wb.close()
    return path


def _column_specs(book: Codebook) -> list[tuple[str, object]]:
    """One (kind, payload) per entry column, in the order entry_headers() gives them."""
    specs: list[tuple[str, object]] = []
    for q in book.questions:
        if q.type == "select_multiple":
            specs.extend(("choice", YES_NO) for _ in q.codes)
        elif q.type == "rank":
            specs.extend(("choice", [str(i) for i in range(1, len(q.codes) + 1)]) for _ in q.codes)
        elif q.type == "select_one":
            specs.append(("choice", [f"{c.code} {c.label_zh}" for c in q.choices]))
        elif q.type in ("integer", "decimal") and q.min is not None and q.max is not None:
            specs.append(("range", (q.min, q.max)))
        else:
            specs.append(("free", None))
    return specs


def looks_like_paper(headers) -> bool:
    names = [str(h).strip() for h in headers]
    return len(names) >= 2 and names[0] == META[0] and META[1] in names


def read_paper_table(table: pd.DataFrame, path: Path, codebook: Codebook, root=None):
    """The entry sheet → the 问卷星 coded reader (labels stripped from "code label" cells)."""
    from pipelines.ingest.wjx import read_wjx_table

    table = table.rename(columns=WJX_NAMES).copy()
    choice_headers = {h for h, (kind, _) in zip(entry_headers(codebook), _column_specs(codebook)) if kind == "choice"}
    for col in table.columns[len(META):]:
        if col not in choice_headers:
            continue
        values = table[col].astype("string")
        codes = values.str.extract(CODE_PREFIX, expand=False)
        table[col] = codes.where(codes.notna(), values).fillna("")
    table["所用时间"] = ""
    table["来源"] = "纸质问卷"
    table["提交答卷时间"] = table["提交答卷时间"].map(_date_text)
    frame, missing, info = read_wjx_table(table, path, codebook, root)
    frame["duration_s"] = np.nan  # typing time is not answering time: speeder rules must not apply
    frame["channel"] = "纸质问卷"
    info = {**info, "platform": PLATFORM, "mode": "coded"}
    return frame, missing, info


def _date_text(value) -> str:
    text = "" if value is None or value is pd.NA else str(value).strip()
    match = re.match(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})", text)
    return f"{match.group(1)}-{int(match.group(2)):02d}-{int(match.group(3)):02d} 00:00:00" if match else text
