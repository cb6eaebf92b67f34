"""问卷星 downloads: write_wjx → read_wjx round trips, merging, and every bad-input case."""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from openpyxl import Workbook

from pipelines.codebook import load_codebook
from pipelines.demo.wjx_export import wjx_filename, wjx_table, write_wjx
from pipelines.errors import InputError
from pipelines.ingest import ingest_folder, read_export
from pipelines.ingest.merge import merge_downloads
from pipelines.ingest.tables import raw_columns, read_table
from pipelines.ingest.wjx import looks_like_wjx, read_wjx

ROOT = Path(__file__).resolve().parents[1]
ZH, EN = "label::中文 (zh)", "label::English (en)"
SURVEY = ["type", "name", ZH, EN, "qnum", "required", "relevant", "appearance", "personal", "role"]


# ------------------------------------------------------------------------------------------ fixtures

def build_codebook(path: Path) -> Path:
    """A small XLSForm workbook covering every question shape ingest handles (docs/codebook.md)."""
    survey = [
        ("select_one gender", "gender", "孩子的性别？", "Gender", 1, "yes", "", "", "", "gender"),
        ("select_one compound", "compound", "您居住的小区：", "Compound", 2, "yes", "", "", "", ""),
        ("select_multiple needs", "needs", "您希望社区提供哪些服务？（可多选）", "Needs", 3, "yes", "", "", "", ""),
        ("begin_group", "sat", "请评价以下服务", "Rate", 4, "", "", "table-list", "", ""),
        ("select_one sat5", "sat_a", "课后辅导", "Tutoring", "", "yes", "", "", "", ""),
        ("select_one sat5", "sat_b", "安全教育", "Safety", "", "yes", "", "", "", ""),
        ("select_one sat5", "sat_c", "亲子活动", "Family", "", "", "", "", "", ""),
        ("end_group", "", "", "", "", "", "", "", "", ""),
        ("rank priority", "priority", "请对以下需求排序", "Rank", 5, "", "", "", "", ""),
        ("integer", "age", "孩子的年龄（周岁）", "Age", 6, "yes", "", "", "", "child_age"),
        ("text", "advice", "您的建议", "Advice", 7, "", "", "", "", ""),
        ("text", "phone", "联系电话", "Phone", 8, "", "", "", "yes", "link_phone"),
        ("select_one yesno", "girls_club", "是否愿意参加女孩俱乐部？", "Girls club", 9, "yes", "${gender} = 2", "",
         "", ""),
    ]
    choices = [
        ("gender", 1, "男", "Male", ""), ("gender", 2, "女", "Female", ""),
        ("compound", 1, "中福城", "A", ""), ("compound", 2, "金尚小区", "B", ""),
        ("compound", 3, "其他（请注明）", "Other", "yes"),
        ("needs", 1, "运动", "Sport", ""), ("needs", 2, "阅读", "Reading", ""), ("needs", 3, "艺术", "Arts", ""),
        ("needs", 4, "其他", "Other", "yes"),
        *[("sat5", i, t, t, "") for i, t in enumerate(["很不满意", "不满意", "一般", "满意", "很满意"], start=1)],
        ("priority", 1, "托管", "Care", ""), ("priority", 2, "学习辅导", "Study", ""),
        ("priority", 3, "户外活动", "Outdoor", ""), ("priority", 4, "心理支持", "Support", ""),
        ("yesno", 1, "是", "Yes", ""), ("yesno", 2, "否", "No", ""),
    ]
    book = Workbook()
    ws = book.active
    ws.title = "survey"
    ws.append(SURVEY)
    for row in survey:
        ws.append(list(row))
    ws = book.create_sheet("choices")
    ws.append(["list_name", "name", ZH, EN, "other"])
    for row in choices:
        ws.append(list(row))
    ws = book.create_sheet("settings")
    ws.append(["form_title", "form_id", "version"])
    ws.append(["家长问卷", "parent", "test"])
    book.save(path)
    return path


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    return load_codebook(build_codebook(tmp_path_factory.mktemp("cb") / "parent.xlsx"))


def make_frame(book, n: int = 60, seed: int = 1) -> pd.DataFrame:
    """A RawResponses-shaped frame (without source_file/source_row) exercising every case."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "platform_id": pd.array(np.arange(1, n + 1).astype(str), dtype="string"),
        "submitted_at": pd.Timestamp("2024-07-05 08:00:00") + pd.to_timedelta(rng.integers(0, 86400, n), unit="s"),
        "duration_s": rng.integers(30, 900, n).astype(float),
        "channel": pd.array(rng.choice(["手机提交/微信", "电脑提交/直接访问", "手机提交"], n), dtype="string"),
        "ip": pd.array([f"183.192.16.{i}(福建-厦门)" for i in range(n)], dtype="string"),
    })
    gender = rng.integers(1, 3, n)
    frame["gender"] = pd.array(gender, dtype="Int64")
    compound = rng.choice([1, 2, 3], n, p=[0.5, 0.3, 0.2])
    frame["compound"] = pd.array(compound, dtype="Int64")
    others = np.array(["江头小区", "a┋b〖x〗", "旧村, 3号楼", '"引号"小区', "空 格 "], dtype=object)
    frame["compound_other"] = pd.array(np.where(compound == 3, rng.choice(others, n), None), dtype="string")
    chosen = rng.random((n, 4)) < 0.45
    chosen[~chosen.any(axis=1), 0] = True
    unanswered = rng.random(n) < 0.1  # the multi-select left blank (it is required, but data are data)
    for j in range(4):
        frame[f"needs__{j + 1}"] = pd.array(np.where(unanswered, None, chosen[:, j].astype(int)), dtype="Int64")
    needs_other = rng.choice(np.array(["游泳┋跳绳", "编程", "书法〖毛笔〗"], dtype=object), n)
    frame["needs_other"] = pd.array(np.where(chosen[:, 3] & ~unanswered, needs_other, None), dtype="string")
    for col in ("sat_a", "sat_b", "sat_c"):
        values = rng.integers(1, 6, n).astype(object)
        values[rng.random(n) < 0.1] = None
        frame[col] = pd.array(values, dtype="Int64")
    ranks = np.full((n, 4), np.nan)
    for i in range(n):
        k = int(rng.integers(0, 5))  # 0 = not answered, 4 = all ranked, else partial
        ranks[i, rng.permutation(4)[:k]] = np.arange(1, k + 1)
    for j in range(4):
        frame[f"priority__{j + 1}"] = pd.array(ranks[:, j], dtype="Int64")
    ages = rng.choice(np.array(["8", "8岁", " 十岁", "12", None], dtype=object), n)
    frame["age"] = pd.array(ages, dtype="string")
    advice = rng.choice(np.array(["多办活动，谢谢", "line1\nline2", "<b>a,b</b>", " 中福城 ", None, None], dtype=object), n)
    frame["advice"] = pd.array(advice, dtype="string")
    frame["phone"] = pd.array(np.where(rng.random(n) < 0.7, [f"138{i:08d}" for i in range(n)], None), dtype="string")
    girls = np.where(gender == 2, rng.integers(1, 3, n), 0).astype(object)
    girls[gender != 2] = None
    girls[(gender == 2) & (rng.random(n) < 0.15)] = None  # shown but left blank
    frame["girls_club"] = pd.array(girls, dtype="Int64")
    return frame


def expected(frame: pd.DataFrame, book, mode: str) -> pd.DataFrame:
    """What a download in `mode` can give back: coded downloads carry no "other" texts."""
    out = frame.copy()
    # a multi-select answered with nothing chosen is written as blank
    if mode == "coded":
        for q in book.questions:
            if q.other_choice is not None:
                out[q.other_column] = pd.array([pd.NA] * len(out), dtype="string")
    return out[[c for c in frame.columns]]


def compare(got: pd.DataFrame, want: pd.DataFrame) -> None:
    cols = list(want.columns)
    pd.testing.assert_frame_equal(got[cols].reset_index(drop=True), want.reset_index(drop=True), check_dtype=True)


WRITES = [("text", "xlsx", "utf-8-sig"), ("coded", "xlsx", "utf-8-sig"), ("text", "csv", "gb18030"),
          ("coded", "csv", "utf-8-sig")]


# ------------------------------------------------------------------------------------------ round trips

@pytest.mark.parametrize("mode,fmt,encoding", WRITES)
def test_round_trip(tmp_path, book, mode, fmt, encoding):
    frame = make_frame(book)
    path = tmp_path / wjx_filename(331954276, mode, "家长问卷", len(frame), fmt)
    write_wjx(frame, book, path, mode=mode, fmt=fmt, encoding=encoding)
    got, missing, info = read_wjx(path, book, root=tmp_path)
    assert info["platform"] == "wjx" and info["mode"] == mode and info["rows"] == len(frame)
    assert info["unmatched"] == []
    compare(got, expected(frame, book, mode))
    assert got["source_file"].unique().tolist() == [path.name]
    assert got["source_row"].tolist() == list(range(1, len(frame) + 1))
    assert list(got.columns[:7]) == ["source_file", "source_row", "platform_id", "submitted_at", "duration_s",
                                     "channel", "ip"]
    assert list(got.columns[7:]) == list(raw_columns(book))
    # skipped by logic and left blank stay distinct
    reasons = missing.set_index(["source_row", "column"])["reason"]
    boys = np.flatnonzero(frame["gender"].to_numpy() == 1) + 1
    girls_blank = np.flatnonzero((frame["gender"].to_numpy() == 2) & frame["girls_club"].isna().to_numpy()) + 1
    assert all(reasons[(r, "girls_club")] == "skipped" for r in boys)
    assert all(reasons[(r, "girls_club")] == "blank" for r in girls_blank)
    multi_blank = np.flatnonzero(frame["needs__1"].isna().to_numpy()) + 1
    assert all(reasons[(r, "needs")] == "blank" for r in multi_blank)
    ranks = frame[[f"priority__{c}" for c in range(1, 5)]]
    partial = np.flatnonzero((ranks.notna().any(axis=1) & ranks.isna().any(axis=1)).to_numpy())
    for i in partial:
        for c in range(1, 5):
            if pd.isna(ranks.iloc[i, c - 1]):
                assert reasons[(i + 1, f"priority__{c}")] == "not_ranked"
    none_ranked = np.flatnonzero(ranks.isna().all(axis=1).to_numpy()) + 1
    assert all(reasons[(r, "priority__1")] == "blank" for r in none_ranked)
    advice_blank = np.flatnonzero(frame["advice"].isna().to_numpy()) + 1
    assert all(reasons[(r, "advice")] == "blank" for r in advice_blank)
    assert len(missing) == missing[["source_row", "column"]].drop_duplicates().shape[0]


def test_text_download_looks_like_wjx(tmp_path, book):
    frame = make_frame(book, n=30)
    headers, cols = wjx_table(frame, book, "text")
    assert headers[:6] == ["序号", "提交答卷时间", "所用时间", "来源", "来源详情", "来自IP"]
    assert "4、请评价以下服务—课后辅导" in headers and "4、安全教育" in headers
    assert "3、您希望社区提供哪些服务？（可多选）" in headers
    row = {h: c[0] for h, c in zip(headers, cols)}
    assert row["序号"] == 1 and row["所用时间"].endswith("秒")
    assert row["提交答卷时间"][4] == "/" and len(row["提交答卷时间"]) == 19
    needs = cols[headers.index("3、您希望社区提供哪些服务？（可多选）")]
    assert any("┋" in v for v in needs) and any("其他〖" in v for v in needs)
    assert any("→" in v for v in cols[headers.index("5、请对以下需求排序")])
    coded_headers, coded_cols = wjx_table(frame, book, "coded")
    assert "3(运动)" in coded_headers and "5(托管)" in coded_headers
    girls = coded_cols[coded_headers.index("9、是否愿意参加女孩俱乐部？")]
    assert "-3" in set(girls)


def test_write_is_deterministic(tmp_path, book):
    frame = make_frame(book, n=20)
    a = write_wjx(frame, book, tmp_path / "a.xlsx", mode="text")
    b = write_wjx(frame, book, tmp_path / "b.xlsx", mode="text")
    assert a.read_bytes() == b.read_bytes()
    c = write_wjx(frame, book, tmp_path / "c.csv", mode="coded", fmt="csv", encoding="gb18030")
    d = write_wjx(frame, book, tmp_path / "d.csv", mode="coded", fmt="csv", encoding="gb18030")
    assert c.read_bytes() == d.read_bytes()


def test_filename():
    assert wjx_filename(331954276, "text", "家长问卷", 469) == "331954276_按文本_家长问卷_469_469.xlsx"
    assert wjx_filename(1, "coded", "儿童问卷", 5, "csv") == "1_按序号_儿童问卷_5_5.csv"


def test_long_numbers_and_datetime_cells(tmp_path):
    from datetime import datetime
    wb = Workbook()
    ws = wb.active
    ws.append(["序号", "提交答卷时间", "电话", "分数"])
    ws.append([1, datetime(2024, 7, 5, 14, 22, 55), 13812345678, 0.5])
    ws.append([2, "2024/07/05 14:22:55", 1.5e20, 3])
    wb.save(tmp_path / "x.xlsx")
    table = read_table(tmp_path / "x.xlsx")
    assert table.iloc[:, 1].tolist() == ["2024-07-05 14:22:55", "2024/07/05 14:22:55"]
    assert table.iloc[:, 2].tolist() == ["13812345678", "150000000000000000000"]
    assert table.iloc[:, 3].tolist() == ["0.5", "3"]


def test_csv_variants(tmp_path):
    (tmp_path / "a.csv").write_bytes("序号;名字;\r\n1;张三;\r\n2;\t李四\t;\r\n".encode("gb18030"))
    table = read_table(tmp_path / "a.csv")
    assert list(table.columns) == ["序号", "名字"] and table.iloc[:, 1].tolist() == ["张三", "李四"]
    (tmp_path / "b.csv").write_text("序号\t名字\n1\tNA\n", encoding="utf-16")
    assert read_table(tmp_path / "b.csv").iloc[0].tolist() == ["1", "NA"]
    (tmp_path / "c.csv").write_text("序号,名字,电话\n1,张三\n\n,,\n3,王五,13812345678\n", encoding="utf-8")
    table = read_table(tmp_path / "c.csv")  # a short row (pandas fallback), an empty row skipped
    assert table.values.tolist() == [["1", "张三", ""], ["3", "王五", "13812345678"]]
    assert table.index.tolist() == [1, 3]
    (tmp_path / "d.csv").write_text("序号,名字\n1,张三,多余,多余\n", encoding="utf-8")
    with pytest.raises(InputError, match="d.csv"):
        read_table(tmp_path / "d.csv")


def test_columns_reordered(tmp_path, book):
    frame = make_frame(book, n=40)
    path = write_wjx(frame, book, tmp_path / "x_按文本_t_40_40.xlsx")
    base, base_missing, _ = read_wjx(path, book, tmp_path)
    table = read_table(path)
    order = list(range(len(table.columns)))
    rng = np.random.default_rng(3)
    shuffled = [order[0]] + list(rng.permutation(order[1:]))
    # a bare matrix row needs its matrix right before it, so use the numbered variant everywhere
    out = table.iloc[:, shuffled]
    out.to_csv(tmp_path / "y_按文本_t_40_40.csv", index=False, encoding="utf-8-sig")
    got, missing, info = read_wjx(tmp_path / "y_按文本_t_40_40.csv", book, tmp_path)
    assert info["unmatched"] == []
    compare(got.drop(columns="source_file"), base.drop(columns="source_file"))
    cols = ["source_row", "column", "reason"]
    pd.testing.assert_frame_equal(missing[cols].sort_values(cols).reset_index(drop=True),
                                  base_missing[cols].sort_values(cols).reset_index(drop=True))


def test_header_variants_and_renumbering(tmp_path, book):
    frame = make_frame(book, n=25)
    path = write_wjx(frame, book, tmp_path / "v_按文本_t.xlsx")
    base, _, _ = read_wjx(path, book, tmp_path)
    table = read_table(path)
    renamed = []
    for h in table.columns:
        if h == "4、安全教育":
            h = "安全教育"  # bare matrix row after its matrix
        elif h == "4、亲子活动":
            h = "4、请评价以下服务—亲子活动"
        elif h.startswith("3、"):
            h = "第3题 " + h[2:].replace("？", "?") + "(多选题 *必答)"
        elif h.startswith("6、"):
            h = "7. 孩子的年龄(周岁)"  # renumbered: the text decides
        elif h.startswith("7、"):
            h = "12、您的建议  "
        renamed.append(h)
    table.columns = renamed
    table.insert(3, "总分", "0")
    table["额外的列"] = "x"
    table.to_csv(tmp_path / "w_按文本_t.csv", index=False)
    got, _, info = read_wjx(tmp_path / "w_按文本_t.csv", book, tmp_path)
    assert info["unmatched"] == ["额外的列"]
    compare(got.drop(columns="source_file"), base.drop(columns="source_file"))


def test_mode_from_content(tmp_path, book):
    frame = make_frame(book, n=20)
    write_wjx(frame, book, tmp_path / "plain.csv", mode="coded", fmt="csv")
    write_wjx(frame, book, tmp_path / "plain2.csv", mode="text", fmt="csv")
    assert read_wjx(tmp_path / "plain.csv", book)[2]["mode"] == "coded"
    assert read_wjx(tmp_path / "plain2.csv", book)[2]["mode"] == "text"


# ------------------------------------------------------------------------------------------ merging

def test_text_and_coded_merged(tmp_path, book):
    frame = make_frame(book, n=50)
    folder = tmp_path / "data_raw" / "2024Q3" / "parent"
    write_wjx(frame, book, folder / wjx_filename(9, "text", "家长问卷", 50), mode="text")
    write_wjx(frame, book, folder / wjx_filename(9, "coded", "家长问卷", 50), mode="coded")
    (folder / "~$lock.xlsx").write_bytes(b"junk")
    (folder / ".DS_Store").write_bytes(b"junk")
    (folder / "README.md").write_text("notes")
    result = ingest_folder(folder, book, tmp_path)
    compare(result.frame, frame)  # the coded codes and the text's other texts
    coded_name = f"data_raw/2024Q3/parent/{wjx_filename(9, 'coded', '家长问卷', 50)}"
    assert set(result.frame["source_file"]) == {coded_name}
    assert result.missing["source_file"].eq(coded_name).all()
    assert len(result.files) == 2 and all(len(f["sha256"]) == 64 for f in result.files)
    by_mode = {f["mode"]: f for f in result.files}
    assert by_mode["text"]["joined"] == 50 and by_mode["coded"]["kept"] == 50
    assert result.merge["rows"] == 50


def test_text_only_rows_survive_merge(tmp_path, book):
    frame = make_frame(book, n=30)
    coded = write_wjx(frame.iloc[:20], book, tmp_path / "a_按序号_t.xlsx", mode="coded")
    text = write_wjx(frame, book, tmp_path / "b_按文本_t.xlsx", mode="text")
    parts = [read_wjx(coded, book, tmp_path), read_wjx(text, book, tmp_path)]
    got, missing, info = merge_downloads(parts, book)
    compare(got, frame)
    assert got["source_file"].tolist() == ["a_按序号_t.xlsx"] * 20 + ["b_按文本_t.xlsx"] * 10
    files = info["files"]
    assert files["b_按文本_t.xlsx"] == {**files["b_按文本_t.xlsx"], "rows": 30, "joined": 20, "kept": 10}
    for entry in files.values():
        assert entry["rows"] == entry["kept"] + entry["duplicates"] + entry["joined"]


def test_same_file_twice_not_double_counted(tmp_path, book):
    frame = make_frame(book, n=40)
    folder = tmp_path / "in"
    first = write_wjx(frame, book, folder / "1_按文本_t_40_40.xlsx")
    shutil.copy(first, folder / "1_按文本_t_40_40 (1).xlsx")
    write_wjx(frame.iloc[25:], book, folder / "2_按文本_t.csv", fmt="csv")  # overlapping 序号 range
    result = ingest_folder(folder, book, tmp_path)
    assert len(result.frame) == 40 and result.frame["platform_id"].is_unique
    compare(result.frame, frame)
    dups = {f["file"]: f["duplicates"] for f in result.files}
    # files are read in name order (" (1)" sorts before "."), the first one keeps its rows
    assert dups == {"in/1_按文本_t_40_40 (1).xlsx": 0, "in/1_按文本_t_40_40.xlsx": 40, "in/2_按文本_t.csv": 15}
    assert result.files[0].get("same_as") is None and result.files[1]["same_as"] == "in/1_按文本_t_40_40 (1).xlsx"
    assert result.missing.duplicated(["source_file", "source_row", "column"]).sum() == 0
    assert set(result.missing["source_file"]) == set(result.frame["source_file"])
    assert sum(f["kept"] for f in result.files) == 40


# ------------------------------------------------------------------------------------------ bad input

def _error(fn, *args) -> str:
    with pytest.raises(InputError) as exc:
        fn(*args)
    return str(exc.value)


def test_empty_file(tmp_path, book):
    (tmp_path / "empty_按文本.xlsx").write_bytes(b"")
    assert "empty_按文本.xlsx" in _error(read_wjx, tmp_path / "empty_按文本.xlsx", book)
    (tmp_path / "empty.csv").write_bytes(b"")
    assert "empty.csv" in _error(read_wjx, tmp_path / "empty.csv", book)
    (tmp_path / "blank.csv").write_text("\n\n")
    assert "no header" in _error(read_wjx, tmp_path / "blank.csv", book)


def test_garbage_and_truncated_workbooks(tmp_path, book):
    rng = np.random.default_rng(0)
    (tmp_path / "garbage.xlsx").write_bytes(rng.bytes(5000))
    assert "garbage.xlsx" in _error(read_wjx, tmp_path / "garbage.xlsx", book)
    good = write_wjx(make_frame(book, n=30), book, tmp_path / "good.xlsx")
    data = good.read_bytes()
    (tmp_path / "truncated.xlsx").write_bytes(data[: len(data) // 2])
    message = _error(read_wjx, tmp_path / "truncated.xlsx", book)
    assert "truncated.xlsx" in message and "cannot be opened" in message
    (tmp_path / "locked.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + rng.bytes(2000))
    assert "password" in _error(read_wjx, tmp_path / "locked.xlsx", book)
    (tmp_path / "binary.csv").write_bytes(b"\x00\x01\x02" * 100)
    assert "binary.csv" in _error(read_wjx, tmp_path / "binary.csv", book)
    (tmp_path / "answers.sav").write_bytes(b"$FL2")
    assert "answers.sav" in _error(read_wjx, tmp_path / "answers.sav", book)
    empty_book = tmp_path / "nohead.xlsx"
    Workbook().save(empty_book)
    assert "no header" in _error(read_wjx, empty_book, book)


def test_missing_required_question(tmp_path, book):
    path = write_wjx(make_frame(book, n=10), book, tmp_path / "m_按文本.csv", fmt="csv")
    table = read_table(path)
    table.drop(columns=[c for c in table.columns if c.startswith("6、")]).to_csv(tmp_path / "m2_按文本.csv",
                                                                                    index=False)
    message = _error(read_wjx, tmp_path / "m2_按文本.csv", book)
    assert "m2_按文本.csv" in message and "缺少第6题" in message and "age" in message
    # an optional question may be absent: its columns are <NA>
    table.drop(columns=[c for c in table.columns if c.startswith("7、")]).to_csv(tmp_path / "m3_按文本.csv",
                                                                                    index=False)
    got, _, info = read_wjx(tmp_path / "m3_按文本.csv", book)
    assert got["advice"].isna().all() and info["absent"] == ["advice"]


def test_unknown_option_text(tmp_path, book):
    path = write_wjx(make_frame(book, n=10), book, tmp_path / "u_按文本.csv", fmt="csv")
    table = read_table(path)
    col = next(c for c in table.columns if c.startswith("1、"))
    table.loc[table.index[3], col] = "男孩"
    table.to_csv(tmp_path / "u2_按文本.csv", index=False)
    message = _error(read_wjx, tmp_path / "u2_按文本.csv", book)
    assert "u2_按文本.csv" in message and "男孩" in message and "gender" in message and "renamed option?" in message
    assert "row 4" in message


def test_unknown_code_and_not_wjx(tmp_path, book):
    path = write_wjx(make_frame(book, n=10), book, tmp_path / "c_按序号.csv", mode="coded", fmt="csv")
    table = read_table(path)
    col = next(c for c in table.columns if c.startswith("1、"))
    table.loc[table.index[0], col] = "7"
    table.to_csv(tmp_path / "c2_按序号.csv", index=False)
    assert "c2_按序号.csv" in _error(read_wjx, tmp_path / "c2_按序号.csv", book)
    pd.DataFrame({"编号": ["1"], "开始答题时间": ["x"]}).to_csv(tmp_path / "tencent.csv", index=False)
    assert "tencent.csv" in _error(read_export, tmp_path / "tencent.csv", book, tmp_path)
    assert not looks_like_wjx(["编号", "开始答题时间", "结束答题时间"])
    assert looks_like_wjx(["序号", "来自IP", "提交答卷时间", "所用时间"])


def test_empty_folder(tmp_path, book):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "README.md").write_text("x")
    assert "has no export files" in _error(ingest_folder, tmp_path / "w", book, tmp_path)


def test_full_width_markers_and_old_header_order(tmp_path, book):
    frame = make_frame(book, n=12)
    path = write_wjx(frame, book, tmp_path / "o_按文本.csv", fmt="csv")
    base, base_missing, _ = read_wjx(path, book)
    table = read_table(path)
    table = table.replace({"(跳过)": "（跳过）", "(空)": ""})
    cols = list(table.columns)
    cols.insert(3, cols.pop(cols.index("来自IP")))  # older: 来自IP before 来源
    table[cols].to_csv(tmp_path / "o2_按文本.csv", index=False)
    got, missing, _ = read_wjx(tmp_path / "o2_按文本.csv", book)
    compare(got.drop(columns="source_file"), base.drop(columns="source_file"))
    assert missing["reason"].tolist() == base_missing["reason"].tolist()


# ------------------------------------------------------------------------------------------ real questionnaires

@pytest.mark.parametrize("instrument", ["parent", "child", "community", "activity"])
def test_real_questionnaires_round_trip(tmp_path, instrument):
    path = ROOT / "config" / "questionnaires" / f"{instrument}.xlsx"
    if not path.exists():
        pytest.skip(f"{path} not built yet")
    real = load_codebook(path)
    frame = synthetic(real, n=25)
    for mode, fmt, encoding in WRITES:
        out = write_wjx(frame, real, tmp_path / wjx_filename(1, mode, real.title, 25, fmt), mode=mode, fmt=fmt,
                        encoding=encoding)
        got, _, info = read_wjx(out, real, tmp_path)
        assert info["unmatched"] == [] and info["absent"] == []
        compare(got, expected(frame, real, mode))


def synthetic(book, n: int, seed: int = 5) -> pd.DataFrame:
    """Any codebook: random valid answers, relevance applied in questionnaire order."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"platform_id": pd.array(np.arange(1, n + 1).astype(str), dtype="string"),
                          "submitted_at": pd.Timestamp("2024-07-05") + pd.to_timedelta(np.arange(n) * 61, unit="s"),
                          "duration_s": np.full(n, 136.0),
                          "channel": pd.array(["手机提交/微信"] * n, dtype="string"),
                          "ip": pd.array(["1.2.3.4(福建-厦门)"] * n, dtype="string")})
    for q in book.questions:
        k = len(q.codes)
        if q.type == "select_one":
            frame[q.name] = pd.array(rng.integers(1, k + 1, n), dtype="Int64")
        elif q.type == "select_multiple":
            chosen = rng.random((n, k)) < 0.4
            chosen[~chosen.any(axis=1), 0] = True
            for j, c in enumerate(q.codes):
                frame[q.option_column(c)] = pd.array(chosen[:, j].astype(int), dtype="Int64")
        elif q.type == "rank":
            ranks = np.argsort(rng.random((n, k)), axis=1).argsort(axis=1) + 1.0
            ranks[ranks > 3] = np.nan
            for j, c in enumerate(q.codes):
                frame[q.option_column(c)] = pd.array(ranks[:, j], dtype="Int64")
        else:
            frame[q.name] = pd.array(rng.choice(["5", "8岁", "中福城", "无"], n), dtype="string")
        if q.other_choice is not None:
            if q.type == "select_one":
                is_other = frame[q.name].to_numpy() == q.other_choice.code
            else:
                is_other = frame[q.option_column(q.other_choice.code)].notna().to_numpy() & (
                    frame[q.option_column(q.other_choice.code)].fillna(0).to_numpy() > 0)
                if q.type == "rank":
                    is_other = np.zeros(n, dtype=bool)
            frame[q.other_column] = pd.array(np.where(is_other, "其它┋说明", None), dtype="string")
        if q.relevant is not None:
            shown = q.relevant.applies(frame).to_numpy()
            for col in [c for c in frame.columns if c == q.name or c.startswith(q.name + "__")
                        or c == q.other_column]:
                frame.loc[~shown, col] = pd.NA
    return frame[["platform_id", "submitted_at", "duration_s", "channel", "ip", *raw_columns(book)]]


def test_zip_is_xlsx(tmp_path, book):
    path = write_wjx(make_frame(book, n=5), book, tmp_path / "z.xlsx")
    assert zipfile.is_zipfile(path)


def test_numeric_cells_and_score_mode(tmp_path, book):
    """Real 按序号 workbooks hold number cells; 按分数 with default scores reads like 按序号."""
    frame = make_frame(book, n=30)
    path = write_wjx(frame, book, tmp_path / "n_按序号.csv", mode="coded", fmt="csv")
    base, base_missing, _ = read_wjx(path, book)
    table = read_table(path)
    wb = Workbook()
    ws = wb.active
    ws.append(list(table.columns))
    for row in table.itertuples(index=False):
        ws.append([int(v) if v.lstrip("-").isdigit() and len(v) < 6 else v for v in row])
    wb.save(tmp_path / "n2_按序号.xlsx")
    got, missing, info = read_wjx(tmp_path / "n2_按序号.xlsx", book)
    assert info["mode"] == "coded"
    compare(got.drop(columns="source_file"), base.drop(columns="source_file"))
    assert missing["reason"].tolist() == base_missing["reason"].tolist()
    shutil.copy(path, tmp_path / "n3_按分数.csv")
    got, _, info = read_wjx(tmp_path / "n3_按分数.csv", book)
    assert info["mode"] == "score"
    compare(got.drop(columns="source_file"), base.drop(columns="source_file"))


def test_merge_reports_conflicts(tmp_path, book):
    frame = make_frame(book, n=20)
    coded = write_wjx(frame, book, tmp_path / "a_按序号.csv", mode="coded", fmt="csv")
    changed = frame.copy()
    changed.loc[0:4, "gender"] = 3 - changed.loc[0:4, "gender"]
    changed["girls_club"] = pd.array([pd.NA] * len(changed), dtype="Int64")  # keep skip logic consistent
    text = write_wjx(changed, book, tmp_path / "b_按文本.csv", mode="text", fmt="csv")
    got, _, info = merge_downloads([read_wjx(coded, book, tmp_path), read_wjx(text, book, tmp_path)], book)
    assert info["conflicts"] >= 5 and info["joined"] == 20 and len(got) == 20
    assert got["gender"].tolist() == frame["gender"].tolist()  # the coded download's codes win


def test_coded_blank_cells_and_unknown_values(tmp_path, book):
    frame = make_frame(book, n=20)
    path = write_wjx(frame, book, tmp_path / "e_按序号.csv", mode="coded", fmt="csv")
    base, base_missing, _ = read_wjx(path, book)
    table = read_table(path)
    blank_rows = base.index[base["needs__1"].isna()]
    needs = [c for c in table.columns if c.startswith("3(")]
    table.loc[table.index[blank_rows], needs] = ""  # an unanswered multi-select as empty cells, not 0s
    table.to_csv(tmp_path / "e2_按序号.csv", index=False)
    got, missing, _ = read_wjx(tmp_path / "e2_按序号.csv", book)
    compare(got.drop(columns="source_file"), base.drop(columns="source_file"))
    assert missing["reason"].tolist() == base_missing["reason"].tolist()
    table.loc[table.index[2], needs[0]] = "7"
    table.to_csv(tmp_path / "e3_按序号.csv", index=False)
    message = _error(read_wjx, tmp_path / "e3_按序号.csv", book)
    assert "e3_按序号.csv" in message and "row 3" in message and "3(运动)" in message


def test_times_and_durations():
    from pipelines.ingest.tables import parse_duration, parse_times

    times = parse_times(np.array(["2024/07/05 14:22:55", "2024-07-05 14:22:56", "2024/7/5 9:03:01", "", "x"],
                                 dtype=object))
    assert [str(t)[:19] for t in times[:3]] == ["2024-07-05T14:22:55", "2024-07-05T14:22:56", "2024-07-05T09:03:01"]
    assert np.isnat(times[3]) and np.isnat(times[4])
    got = parse_duration(np.array(["136秒", "2分16秒", "136", "1小时", "", "abc"], dtype=object))
    np.testing.assert_array_equal(got[:4], [136.0, 136.0, 136.0, 3600.0])
    assert np.isnan(got[4:]).all()
