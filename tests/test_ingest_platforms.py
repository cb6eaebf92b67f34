"""腾讯问卷, KoboToolbox and 问卷星 SPSS exports of the real parent questionnaire read back to the typed answers.

Each platform has its own small writer here that renders a RawResponses frame the way that platform exports it
(/work/shared/research/export-formats.md); `ingest_folder` must give back the same typed values.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest
from openpyxl import Workbook

from pipelines.demo.answers import answer_wave
from pipelines.demo.population import build_population
from pipelines.demo.sampling import add_metadata
from pipelines.demo.wjx_export import write_wjx
from pipelines.errors import InputError
from pipelines.ingest import ingest_folder
from pipelines.ingest.tables import raw_columns

MULTI = ("select_multiple", "rank")


@pytest.fixture(scope="module")
def book(books):
    return books["parent"]


@pytest.fixture(scope="module")
def raw(book, config):
    """20 realistic parent responses, plus "other" texts, an unanswered multi-select and typed oddities."""
    pop = build_population(config, book, 11)
    answers = answer_wave(pop, book, config, config.waves[0].id, 0.0, 11)
    out = add_metadata(answers.iloc[:20], book, config.waves[0], 11).reset_index(drop=True)
    out.loc[[0, 1, 2], "needs__12"] = 1
    out.loc[[0, 1, 2], "needs_other"] = ["篮球场, 游泳", '"编程"课', "书法"]
    out.loc[3, [f"needs__{c}" for c in book["needs"].codes]] = pd.NA  # left unanswered
    out.loc[4, "child_age"] = "8岁"
    out.loc[5, "compound"] = " 中福城 "
    out.loc[6, "suggestion"] = "多办活动，谢谢; 好"
    return out


def _text(values) -> np.ndarray:
    s = pd.Series(values).reset_index(drop=True).astype(object)
    return s.where(s.notna(), "").astype(str).to_numpy(dtype=object)


def _label(q, code) -> str:
    return q.choice(int(code)).label_zh if pd.notna(code) else ""


def _shown(q, raw) -> np.ndarray:
    """Where the form showed q; an answer present counts as shown (the typed `8岁` defeats `${child_age} >= 6`)."""
    shown = np.ones(len(raw), bool) if q.relevant is None else q.relevant.applies(raw).to_numpy(dtype=bool)
    cols = [q.option_column(c) for c in q.codes] if q.type in MULTI else [q.name]
    return shown | raw[cols].notna().any(axis=1).to_numpy()


def _check(frame, raw, book) -> None:
    """Every question column (and the metadata the platform carries) equals the typed answers."""
    dtypes = raw_columns(book)
    got = frame.sort_values("source_row").reset_index(drop=True)
    pd.testing.assert_frame_equal(got[list(dtypes)], raw[list(dtypes)].astype(dtypes), check_dtype=False)
    assert got["platform_id"].notna().all() and (got["duration_s"] == raw["duration_s"]).all()
    assert (got["submitted_at"] == raw["submitted_at"]).all()


# ------------------------------------------------------------------------------------------ 腾讯问卷

def tencent_export(raw, book) -> tuple[list[str], list[np.ndarray]]:
    n, end = len(raw), raw["submitted_at"]
    headers = ["编号", "开始答题时间", "结束答题时间", "答题时长", "地理位置国家和地区", "地理位置省", "地理位置市",
               "用户标识", "昵称", "IP", "UA", "Referrer"]
    cols = [_text(raw["platform_id"]), _text((end - pd.to_timedelta(raw["duration_s"], unit="s")).astype(str)),
            _text(end.astype(str)), _text(raw["duration_s"].astype(int)), _text(["中国"] * n),
            _text(["福建"] * n), _text(["厦门"] * n), _text([f"\to_9f{i:04d}" for i in range(n)]),
            _text([f"小林{i}" for i in range(n)]), _text(raw["ip"].str.replace(r"\(.*\)$", "", regex=True)),
            _text(["Mozilla/5.0 (iPhone) MicroMessenger"] * n), _text(["https://wj.qq.com/s2/1/abc/"] * n)]
    for q in book.questions:
        stem = f"{q.qnum}.{q.label_zh}"
        if q.matrix is not None:
            headers.append(f"{q.qnum}.{book.matrices[q.matrix].label_zh}:{q.label_zh}")
            cols.append(_text(raw[q.name].map(lambda c, q=q: _label(q, c))))
        elif q.type in MULTI:
            for c in q.choices:
                headers.append(f"{stem}:{c.label_zh}")
                v = raw[q.option_column(c.code)]
                cols.append(_text(v.astype("string")) if q.type == "rank" else
                            _text(np.where(v.fillna(0).eq(1), c.label_zh, "")))
            if q.other_choice is not None:
                headers.append(f"{stem}:{q.other_choice.label_zh}_填空1")
                cols.append(_text(raw[q.other_column]))
        elif q.type == "select_one":
            headers.append(stem)
            cols.append(_text(raw[q.name].map(lambda c, q=q: _label(q, c))))
        else:
            headers.append(stem)
            cols.append(_text(raw[q.name].astype("string").radd("\t" if q.name == "phone" else "")))
    return headers + [headers[13]], cols + [cols[13]]  # a repeated header, as Tencent files have


def write_tencent_csv(path: Path, raw, book, encoding="gbk") -> Path:
    headers, cols = tencent_export(raw, book)
    with open(path, "w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerows([headers + [""], *([*row, ""] for row in zip(*cols))])  # every line ends with a comma
    return path


def test_tencent_csv_gbk_trailing_commas(tmp_path, raw, book):
    folder = tmp_path / "data_raw" / "2024-needs" / "parent"
    folder.mkdir(parents=True)
    path = write_tencent_csv(folder / "腾讯问卷_家长问卷.csv", raw, book)
    assert path.read_bytes().splitlines()[1].endswith(b",")
    result = ingest_folder(folder, book, tmp_path)
    _check(result.frame, raw, book)
    frame, info = result.frame, result.files[0]
    assert info["platform"] == "tencent" and info["mode"] == "text"
    assert frame["platform_id"].tolist() == ("tencent-" + raw["platform_id"].astype(str)).tolist()
    assert frame["ip"].str.fullmatch(r"[\d.]+").all()
    assert set(info["platform_columns"]) >= {"用户标识", "昵称", "UA", "Referrer", "地理位置省"}
    texts = frame.select_dtypes("string").drop(columns=["ip", "source_file"]).astype(str)
    assert not texts.apply(lambda c: c.str.contains("小林|o_9f|Mozilla|wj.qq.com")).any().any()
    unanswered = raw.index[raw["participation"].eq(2)].to_numpy() + 1
    missing = result.missing[result.missing["column"].eq("used_services")]
    assert set(missing["source_row"]) >= set(unanswered) and set(missing["reason"]) == {"blank"}
    assert frame.loc[3, [f"needs__{c}" for c in book["needs"].codes]].isna().all()


def test_tencent_xlsx_with_tabs(tmp_path, raw, book):
    headers, cols = tencent_export(raw, book)
    wb = Workbook()
    wb.active.append(headers)
    for row in zip(*cols):
        wb.active.append([f"\t{v}" if v and j == 0 else v for j, v in enumerate(row)])
    wb.save(tmp_path / "tencent.xlsx")
    result = ingest_folder(tmp_path, book, tmp_path)
    _check(result.frame, raw, book)
    assert result.frame["phone"].str.match(r"^1\d{10}$").fillna(True).all()


# ------------------------------------------------------------------------------------------ KoboToolbox

def kobo_export(raw, book, labels=False) -> tuple[list[str], list[np.ndarray]]:
    n, end = len(raw), raw["submitted_at"]
    iso = "%Y-%m-%dT%H:%M:%S.000+08:00"
    headers = ["start", "end", "today", "deviceid"]
    cols = [_text((end - pd.to_timedelta(raw["duration_s"], unit="s")).dt.strftime(iso)),
            _text(end.dt.strftime(iso)), _text(end.dt.strftime("%Y-%m-%d")), _text(["collect:x1"] * n)]
    for q in book.questions:
        name = q.label_zh if labels else q.name
        head = f"{book.matrices[q.matrix].label_zh if labels else q.matrix}/{name}" if q.matrix else name
        if q.type in MULTI:
            v = raw[[q.option_column(c) for c in q.codes]].to_numpy(dtype=float, na_value=np.nan)
            order = [[c for _, c in sorted((r, c) for r, c in zip(row, q.codes) if r > 0)] for row in v]
            words = [[q.choice(c).label_zh if labels else str(c) for c in o] for o in order]
            cols.append(_text([" ".join(w) for w in words]))
            headers.append(head)
            if q.type == "select_multiple":
                for j, c in enumerate(q.choices):
                    headers.append(f"{head}/{c.label_zh if labels else c.code}")
                    cols.append(_text(np.where(np.isnan(v[:, j]), "", np.nan_to_num(v[:, j]).astype(int).astype(str))))
            if q.other_choice is not None:
                headers.append(q.other_column)
                cols.append(_text(raw[q.other_column]))
        else:
            headers.append(head)
            values = raw[q.name].map(lambda c, q=q: _label(q, c)) if labels and q.type == "select_one" else raw[q.name]
            cols.append(_text(values.astype("string")))
    sub = (end - pd.Timedelta(hours=8)).dt.strftime("%Y-%m-%dT%H:%M:%S")
    headers += ["_id", "_uuid", "_submission_time", "_validation_status", "_notes", "_status", "_submitted_by",
                "__version__", "_tags", "_index"]
    cols += [_text(300000001 + np.arange(n)), _text([f"uuid-{i}" for i in range(n)]), _text(sub), _text([""] * n),
             _text([""] * n), _text(["submitted_via_web"] * n), _text([""] * n), _text(["vA"] * n),
             _text([""] * n), _text(np.arange(1, n + 1))]
    return headers, cols


def write_kobo_csv(path: Path, raw, book, drop=()) -> Path:
    headers, cols = kobo_export(raw, book)
    keep = [j for j, h in enumerate(headers) if h not in drop]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=";", quoting=csv.QUOTE_ALL)
        writer.writerows([[headers[j] for j in keep], *([row[j] for j in keep] for row in zip(*cols))])
    return path


def test_kobo_csv_semicolon_quoted(tmp_path, raw, book):
    path = write_kobo_csv(tmp_path / "parent_-_all_versions_-_False_-_2024-07-05.csv", raw, book)
    assert path.read_text(encoding="utf-8").startswith('"start";"end"')
    result = ingest_folder(tmp_path, book, tmp_path)
    _check(result.frame, raw, book)
    assert result.files[0]["platform"] == "kobo"
    assert result.frame["platform_id"].tolist() == [f"kobo-{300000001 + i}" for i in range(len(raw))]
    assert result.frame.loc[0, "needs_other"] == "篮球场, 游泳"
    assert set(result.missing["reason"]) <= {"blank", "not_ranked"}


def test_kobo_xlsx_labels_and_repeat_sheet(tmp_path, raw, book):
    headers, cols = kobo_export(raw, book, labels=True)
    wb = Workbook()
    wb.active.title = "家长问卷"
    wb.active.append(headers)
    for row in zip(*cols):
        wb.active.append(list(row))
    wb.create_sheet("children").append(["child_name", "_parent_index"])
    wb.save(tmp_path / "kobo_labels.xlsx")
    result = ingest_folder(tmp_path, book, tmp_path)
    _check(result.frame, raw, book)
    assert any("children" in w for w in result.files[0]["warnings"])


def test_kobo_summary_column_only(tmp_path, raw, book):
    drop = [f"needs/{c}" for c in book["needs"].codes]
    write_kobo_csv(tmp_path / "kobo.csv", raw, book, drop=drop)
    _check(ingest_folder(tmp_path, book, tmp_path).frame, raw, book)


def test_kobo_mixed_into_wjx_folder(tmp_path, raw, book):
    write_wjx(raw.iloc[:12], book, tmp_path / "331954276_按序号_家长问卷_12_12.xlsx", mode="coded")
    write_wjx(raw.iloc[:12], book, tmp_path / "331954276_按文本_家长问卷_12_12.xlsx", mode="text")
    write_kobo_csv(tmp_path / "kobo.csv", raw.iloc[12:].reset_index(drop=True), book)
    result = ingest_folder(tmp_path, book, tmp_path)
    assert len(result.frame) == len(raw)
    assert {f["platform"] for f in result.files} == {"wjx", "kobo"}
    kobo = result.frame[result.frame["source_file"].eq("kobo.csv")]
    assert len(kobo) == 8 and kobo["needs__1"].tolist() == raw["needs__1"].iloc[12:].tolist()


def test_platform_txt_forces_the_adapter(tmp_path, raw, book):
    write_kobo_csv(tmp_path / "kobo.csv", raw, book, drop=("_uuid", "_submission_time", "_validation_status",
                                                           "_index", "_notes", "_status", "_submitted_by", "_tags"))
    with pytest.raises(InputError, match="not an export of a known platform"):
        ingest_folder(tmp_path, book, tmp_path)
    (tmp_path / "platform.txt").write_text("kobo\n", encoding="utf-8")
    result = ingest_folder(tmp_path, book, tmp_path)
    assert [f["file"] for f in result.files] == ["kobo.csv"] and result.files[0]["platform"] == "kobo"
    assert (result.frame["submitted_at"] == raw["submitted_at"]).all()  # from `end` when no _submission_time
    (tmp_path / "platform.txt").write_text("surveymonkey", encoding="utf-8")
    with pytest.raises(InputError, match="surveymonkey"):
        ingest_folder(tmp_path, book, tmp_path)


# ------------------------------------------------------------------------------------------ 问卷星 SPSS

def write_wjx_sav(path: Path, raw, book) -> Path:
    """Variables Q1, Q5_3 (option), Q14_Row2 (matrix row), Q25_Blank1 (other text), with value labels."""
    data = {"seq": raw["platform_id"].astype(float), "submittime": raw["submitted_at"].dt.strftime("%Y/%m/%d %H:%M:%S"),
            "totalseconds": raw["duration_s"].astype(int).astype(str), "source": pd.Series(["手机提交"] * len(raw)),
            "ip": raw["ip"]}
    labels = {"seq": "序号", "submittime": "提交答卷时间", "totalseconds": "所用时间", "source": "来源", "ip": "来自IP"}
    values: dict[str, dict] = {}
    for q in book.questions:
        shown = _shown(q, raw)
        label = f"{q.qnum}、{q.label_zh}"
        if q.matrix is not None:  # the first grid's rows carry labels, the others only their names
            k = book.matrices[q.matrix].rows.index(q.name) + 1
            var, label = f"Q{q.qnum}_Row{k}", (q.label_zh if q.matrix == "traffic_safety_grid" else "")
        if q.type in MULTI:
            ranked = raw[[q.option_column(x) for x in q.codes]].notna().any(axis=1)
            for c in q.choices:
                v = raw[q.option_column(c.code)].astype("Float64")
                v = (v.where(v.notna() | ~ranked, -2.0) if q.type == "rank" else v).where(shown, -3.0)
                var = f"Q{q.qnum}_{c.code}"
                data[var] = v.astype(float)
                labels[var] = c.label_zh if q.name == "used_services" else f"{q.qnum}({c.label_zh})"
            if q.other_choice is not None:
                data[f"Q{q.qnum}_Blank1"], labels[f"Q{q.qnum}_Blank1"] = _text(raw[q.other_column]), "其他〖填写〗"
            continue
        var = var if q.matrix is not None else f"Q{q.qnum}"
        if q.type == "select_one":
            codes = raw[q.name].astype("Float64").where(shown, -3.0).astype(float)
            values[var] = {float(c.code): c.label_zh for c in q.choices} | {-3.0: "跳过"}
            if q.name == "gender":  # numbered differently from the codebook: the value labels decide
                codes = codes.map({1.0: 2.0, 2.0: 1.0}).fillna(codes)
                values[var] = {1.0: "女", 2.0: "男", -3.0: "跳过"}
            data[var] = codes
        else:
            data[var] = _text(raw[q.name])
        labels[var] = label
    frame = pd.DataFrame(data)
    pyreadstat.write_sav(frame, str(path), column_labels=[labels[c] for c in frame.columns],
                         variable_value_labels=values)
    return path


def test_wjx_sav_round_trip(tmp_path, raw, book):
    write_wjx_sav(tmp_path / "331954276_家长问卷_spss.sav", raw, book)
    result = ingest_folder(tmp_path, book, tmp_path)
    expected = raw.copy()
    expected["compound"] = expected["compound"].str.rstrip()  # SPSS pads strings: trailing spaces cannot survive
    _check(result.frame, expected, book)
    info = result.files[0]
    assert info["platform"] == "wjx" and info["format"] == "sav" and info["mode"] == "coded"
    skipped = result.missing[result.missing["reason"].eq("skipped")]
    assert set(skipped["column"]) >= {"after_school", "used_services"}
    assert result.frame["channel"].eq("手机提交").all()
