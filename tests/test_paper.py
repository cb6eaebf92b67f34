"""The paper-entry workbook: generated from the codebook, filled in as a volunteer would, read back."""
import pandas as pd
from openpyxl import load_workbook

from pipelines.ingest import ingest_folder
from pipelines.ingest.paper import ENTRY_SHEET, write_template


def test_template_has_one_column_per_answer_and_dropdowns(repo_root, tmp_path, books):
    path = write_template(repo_root, "parent", tmp_path)
    wb = load_workbook(path)
    assert wb.sheetnames[0] == ENTRY_SHEET and "说明" in wb.sheetnames
    sheet = wb[ENTRY_SHEET]
    headers = [c.value for c in sheet[1]]
    assert headers[:3] == ["录入编号", "填写日期", "录入人"]
    book = books["parent"]
    n_columns = sum(len(q.codes) if q.type in ("select_multiple", "rank") else 1 for q in book.questions)
    assert len(headers) == 3 + n_columns
    assert len(sheet.data_validations.dataValidation) > 20
    assert "纸质问卷录入说明" in wb["说明"]["A1"].value


def test_filled_template_reads_back(repo_root, tmp_path, books):
    book = books["parent"]
    path = write_template(repo_root, "parent", tmp_path / "tpl")
    wb = load_workbook(path)
    sheet = wb[ENTRY_SHEET]
    headers = [c.value for c in sheet[1]]
    col = {h: i + 1 for i, h in enumerate(headers)}
    hukou = book["hukou"]
    needs = book["needs"]
    hukou_header = next(h for h in headers if h.startswith(f"{hukou.qnum}、"))
    needs_headers = [h for h in headers if h.startswith(f"{needs.qnum}(")]
    age_header = next(h for h in headers if h.startswith(f"{book['child_age'].qnum}、"))
    compound_header = next(h for h in headers if h.startswith(f"{book['compound'].qnum}、"))
    for row, (hukou_choice, age) in enumerate([("2 " + hukou.choices[1].label_zh, "9"), ("1 " + hukou.choices[0].label_zh, "十岁")], start=2):
        sheet.cell(row=row, column=1, value=row - 1)
        sheet.cell(row=row, column=2, value="2025-03-15")
        sheet.cell(row=row, column=3, value="志愿者A")
        sheet.cell(row=row, column=col[hukou_header], value=hukou_choice)
        sheet.cell(row=row, column=col[age_header], value=age)
        sheet.cell(row=row, column=col[compound_header], value="中福城")
        for i, h in enumerate(needs_headers):
            sheet.cell(row=row, column=col[h], value="1 是（选了）" if i in (0, 2) else "0 否（没选）")
    folder = tmp_path / "data_raw" / "2025Q1" / "parent"
    folder.mkdir(parents=True)
    wb.save(folder / "paper.xlsx")
    result = ingest_folder(folder, book, tmp_path)
    frame = result.frame
    assert result.files[0]["platform"] == "paper"
    assert frame["hukou"].tolist() == [2, 1]
    assert frame["child_age"].tolist() == ["9", "十岁"]
    assert frame[f"needs__{needs.codes[0]}"].tolist() == [1, 1]
    assert frame[f"needs__{needs.codes[1]}"].tolist() == [0, 0]
    assert frame["duration_s"].isna().all() and (frame["channel"] == "纸质问卷").all()
    assert pd.Timestamp(frame["submitted_at"].iloc[0]).date().isoformat() == "2025-03-15"
