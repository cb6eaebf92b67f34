"""Loading the XLSForm questionnaires: content of the bundled ones, and errors that name sheet and row."""
import pandas as pd
import pytest
from openpyxl import load_workbook

from pipelines.codebook import load_codebook, load_codebooks
from pipelines.errors import ConfigError
from pipelines.relevance import RelevanceError, parse_relevance


def test_every_questionnaire_has_25_to_60_questions(books):
    for instrument in ("parent", "child", "community"):
        assert 25 <= len(books[instrument].qnums) <= 60, instrument


def test_indicators_cover_every_service_line(books, config):
    measured = {q.indicator for b in books.values() for q in b.questions if q.indicator}
    for line in config.service_lines:
        assert set(line.indicators) <= measured, line.id


def test_who5_scale_follows_the_published_scoring(books):
    who5 = books["child"].scales["who5"]
    assert len(who5.items) == 5 and who5.method == "sum"
    assert who5.multiplier == 4 and who5.low_cut == 13 and who5.mcid == 10
    scores = [c.score for c in books["child"][who5.items[0]].choices]
    assert scores == [0, 1, 2, 3, 4, 5]


def test_sense_of_community_has_four_two_item_subscales(books):
    bscs = books["community"].scales["bscs"]
    assert len(bscs.items) == 8
    assert sorted(len(v) for v in bscs.subscales.values()) == [2, 2, 2, 2]
    assert not any(books["community"][i].reverse for i in bscs.items)


def test_personal_fields_are_marked_and_never_clean_columns(books):
    for book in books.values():
        personal = [q for q in book.questions if q.personal]
        assert any(q.role == "link_phone" for q in personal), book.instrument
        assert not set(q.name for q in personal) & set(book.clean_columns())


def test_matrix_rows_share_the_matrix_number(books):
    parent = books["parent"]
    for matrix in parent.matrices.values():
        nums = {parent[r].qnum for r in matrix.rows}
        assert nums == {matrix.qnum}


def test_clean_columns_expand_multi_select_options(books):
    parent = books["parent"]
    needs = parent["needs"]
    cols = parent.clean_columns()
    for code in needs.codes:
        assert f"needs__{code}" in cols
    assert "needs_other" in cols


def _edit(tmp_path, repo_root, sheet, edit):
    src = repo_root / "config" / "questionnaires" / "child.xlsx"
    wb = load_workbook(src)
    edit(wb[sheet])
    out = tmp_path / "child.xlsx"
    wb.save(out)
    return out


def _header(ws):
    return {c.value: c.column for c in ws[1]}


def test_broken_choice_list_names_the_row(tmp_path, repo_root):
    def edit(ws):
        ws.cell(row=3, column=_header(ws)["name"], value="x")
    path = _edit(tmp_path, repo_root, "choices", edit)
    with pytest.raises(ConfigError, match="choices sheet row 3"):
        load_codebook(path)


def test_unknown_list_is_reported(tmp_path, repo_root):
    def edit(ws):
        for row in range(2, ws.max_row + 1):
            cell = ws.cell(row=row, column=_header(ws)["type"])
            if str(cell.value).startswith("select_one"):
                cell.value = "select_one no_such_list"
                return
    path = _edit(tmp_path, repo_root, "survey", edit)
    with pytest.raises(ConfigError, match="no_such_list"):
        load_codebook(path)


def test_bad_relevant_expression_is_reported(tmp_path, repo_root):
    def edit(ws):
        ws.cell(row=5, column=_header(ws)["relevant"], value="${age} >>> 3")
    path = _edit(tmp_path, repo_root, "survey", edit)
    with pytest.raises(ConfigError, match="survey sheet row 5"):
        load_codebook(path)


def test_missing_instrument_is_reported(tmp_path, repo_root):
    folder = tmp_path / "q"
    folder.mkdir()
    (folder / "parent.xlsx").write_bytes((repo_root / "config/questionnaires/parent.xlsx").read_bytes())
    with pytest.raises(ConfigError, match="child.xlsx"):
        load_codebooks(folder)


def test_garbage_workbook_is_reported(tmp_path):
    path = tmp_path / "parent.xlsx"
    path.write_bytes(b"this is not a workbook")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_codebook(path)


@pytest.mark.parametrize("expr, expected", [
    ("${a} = 1", [True, False, False]),
    ("${a} != 1", [False, True, False]),
    ("${a} >= 2", [False, True, False]),
    ("selected(${m}, 2)", [False, True, False]),
    ("not(selected(${m}, 2))", [True, False, True]),
    ("${a} = 1 or selected(${m}, 2)", [True, True, False]),
    ("(${a} = 1 or ${a} = 2) and selected(${m}, 2)", [False, True, False]),
])
def test_relevance_expressions(expr, expected):
    df = pd.DataFrame({"a": pd.array([1, 2, None], dtype="Int64"), "m__2": pd.array([0, 1, None], dtype="Int64")})
    assert parse_relevance(expr).applies(df).tolist() == expected


def test_relevance_rejects_code_injection():
    with pytest.raises(RelevanceError):
        parse_relevance("__import__('os').system('x')")


def test_codebooks_pickle_with_their_skip_logic(books):
    """The run's helper process receives the codebooks by pickling; skip logic crosses as its expression."""
    import pickle

    copy = pickle.loads(pickle.dumps(books))
    frame = pd.DataFrame({"participation": [1, 2, None]})
    checked = 0
    for name, book in books.items():
        for q in book.questions:
            if q.relevant is not None and q.relevant.refs == {"participation"}:
                again = copy[name][q.name].relevant
                assert again.expr == q.relevant.expr
                assert again.applies(frame).tolist() == q.relevant.applies(frame).tolist() == [True, False, False]
                checked += 1
    assert checked