"""Header normalisation and matching (pipelines.ingest.headers)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.codebook import load_codebook
from pipelines.errors import InputError
from pipelines.ingest.headers import (ITEM, META_PART, OPTION, ROW, UNMATCHED, VALUE, join_multi, match_headers,
                                      normalise_header, split_multi, split_qnum)

try:
    from test_ingest_wjx import build_codebook
except ImportError:  # tests/ became a package
    from tests.test_ingest_wjx import build_codebook


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    return load_codebook(build_codebook(tmp_path_factory.mktemp("cbh") / "parent.xlsx"))


META = ["序号", "提交答卷时间", "所用时间", "来源", "来源详情", "来自IP"]


# ------------------------------------------------------------------------------------------ normalise

def test_normalise_examples():
    assert normalise_header("  3、您希望社区提供哪些服务？  (多选题 *必答)") == "3、您希望社区提供哪些服务?"
    assert normalise_header("3、您希望社区提供哪些服务？【多选题】") == "3、您希望社区提供哪些服务?"
    assert normalise_header("您居住的小区：\u3000 \t 哪个") == "您居住的小区: 哪个"
    assert normalise_header("孩子的年龄（周岁）") == "孩子的年龄(周岁)"
    assert normalise_header("\ufeff序号") == "序号"
    assert normalise_header(None) == ""


@given(st.text())
@settings(max_examples=200, deadline=None)
def test_normalise_is_idempotent(text):
    once = normalise_header(text)
    assert normalise_header(once) == once


@given(st.text(alphabet=st.sampled_from(list("的年龄 （）()【】多选题*必答？?：: \u3000\t")), max_size=30))
@settings(max_examples=200, deadline=None)
def test_normalise_is_idempotent_on_tag_like_text(text):
    once = normalise_header(text)
    assert normalise_header(once) == once


# ------------------------------------------------------------------------------------------ numbers

@pytest.mark.parametrize("header,expected", [
    ("5、题干", (5, "题干")), ("5. 题干", (5, "题干")), ("5．题干", (5, "题干")), ("第5题 题干", (5, "题干")),
    ("第6题(运动)", (6, "(运动)")), ("6(运动)", (6, "(运动)")), ("6. 题干(运动)", (6, "题干(运动)")),
    ("12、 题干 ", (12, "题干")), ("题干", (None, "题干")), ("1.5小时以上", (None, "1.5小时以上")),
    ("2024年你参加过吗", (None, "2024年你参加过吗")),
])
def test_split_qnum(header, expected):
    assert split_qnum(header) == expected


# ------------------------------------------------------------------------------------------ multi

def test_split_multi_examples():
    assert split_multi("运动┋阅读") == [("运动", None), ("阅读", None)]
    assert split_multi("运动┋其他〖游泳┋跳绳〗") == [("运动", None), ("其他", "游泳┋跳绳")]
    assert split_multi("其他〖〗") == [("其他", "")]
    assert split_multi("其他〖书法〖毛笔〗〗┋艺术") == [("其他", "书法〖毛笔〗"), ("艺术", None)]
    assert split_multi("") == []


_label = st.text(alphabet=st.characters(blacklist_characters="┋〖〗", blacklist_categories=("Cs",)), min_size=1,
                 max_size=8)
_plain = st.text(alphabet=st.characters(blacklist_characters="〖〗", blacklist_categories=("Cs",)), max_size=8)
_other = st.one_of(st.none(), _plain, st.builds(lambda a, b, c: f"{a}〖{b}〗{c}", _plain, _plain, _plain),
                   st.builds(lambda a, b: f"{a}┋{b}", _plain, _plain))


@given(st.lists(st.tuples(_label, _other), min_size=1, max_size=6))
@settings(max_examples=200, deadline=None)
def test_split_multi_round_trip(options):
    assert split_multi(join_multi(options)) == options


# ------------------------------------------------------------------------------------------ matching

def _kinds(matches):
    return [(m.kind, m.question.name if m.question else m.meta, m.code) for m in matches]


def test_match_text_download(book):
    headers = META + ["1、孩子的性别？", "2、您居住的小区：", "3、您希望社区提供哪些服务？（可多选）",
                      "4、请评价以下服务—课后辅导", "4、安全教育", "亲子活动", "5、请对以下需求排序", "6、孩子的年龄（周岁）",
                      "7、您的建议", "8、联系电话", "9、是否愿意参加女孩俱乐部？", "备注"]
    got = _kinds(match_headers(headers, book))
    assert got[0] == (META_PART, "platform_id", None)
    assert got[6:] == [(VALUE, "gender", None), (VALUE, "compound", None), (VALUE, "needs", None),
                       (ROW, "sat_a", None), (ROW, "sat_b", None), (ROW, "sat_c", None), (VALUE, "priority", None),
                       (VALUE, "age", None), (VALUE, "advice", None), (VALUE, "phone", None),
                       (VALUE, "girls_club", None), (UNMATCHED, None, None)]


def test_match_coded_download_variants(book):
    headers = ["来自IP", "序号", "提交答卷时间", "所用时间", "1、孩子的性别？", "2、您居住的小区：",
               "第3题(运动)", "3(阅读)", "3. 您希望社区提供哪些服务？(艺术)", "3(其他)",
               "4、请评价以下服务——课后辅导", "4、请评价以下服务—安全教育", "4、亲子活动",
               "5(托管)", "5(学习辅导)", "5(户外活动)", "5(心理支持)", "6、孩子的年龄（周岁）", "9、是否愿意参加女孩俱乐部？"]
    got = _kinds(match_headers(headers, book))
    assert got[6:10] == [(OPTION, "needs", 1), (OPTION, "needs", 2), (OPTION, "needs", 3), (OPTION, "needs", 4)]
    assert got[10:13] == [(ROW, "sat_a", None), (ROW, "sat_b", None), (ROW, "sat_c", None)]
    assert got[13:17] == [(ITEM, "priority", c) for c in range(1, 5)]


def test_match_renumbered_and_reordered(book):
    headers = META + ["12、孩子的年龄(周岁)", "2、孩子的性别?", "1、您居住的小区", "9(运动)", "9(阅读)", "9(艺术)",
                      "9(其他)", "3、请评价以下服务—课后辅导", "3、安全教育", "3、亲子活动", "8、是否愿意参加女孩俱乐部？"]
    got = _kinds(match_headers(headers, book))
    assert got[6:9] == [(VALUE, "age", None), (VALUE, "gender", None), (VALUE, "compound", None)]
    assert got[9:13] == [(OPTION, "needs", c) for c in range(1, 5)]
    assert got[13:16] == [(ROW, "sat_a", None), (ROW, "sat_b", None), (ROW, "sat_c", None)]
    assert got[16] == (VALUE, "girls_club", None)


def test_match_near_text(book):
    headers = META + ["1、孩子性别", "2、您居住的小区：", "3、您希望社区提供哪些服务？", "4、请评价以下服务—课后辅导",
                      "4、安全教育", "6、孩子的年龄", "9、是否愿意参加女孩俱乐部"]
    got = _kinds(match_headers(headers, book))
    assert [g[1] for g in got[6:]] == ["gender", "compound", "needs", "sat_a", "sat_b", "age", "girls_club"]


def test_missing_required_question(book):
    headers = META + ["1、孩子的性别？", "2、您居住的小区：", "3、您希望社区提供哪些服务？",
                      "4、请评价以下服务—课后辅导", "4、安全教育", "9、是否愿意参加女孩俱乐部？"]
    with pytest.raises(InputError) as exc:
        match_headers(headers, book, path="data_raw/w/parent/x.xlsx")
    assert "x.xlsx" in str(exc.value) and "缺少第6题" in str(exc.value) and "孩子的年龄" in str(exc.value)


def test_duplicate_header_is_unmatched(book):
    headers = META + ["1、孩子的性别？", "1、孩子的性别？"]
    got = match_headers(headers, book, required=False)
    assert [m.kind for m in got[6:]] == [VALUE, UNMATCHED]
