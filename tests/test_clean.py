"""Cleaning rules on small constructed frames, including the borderline value of every threshold."""
import numpy as np
import pandas as pd
import pytest

from pipelines.clean import clean_responses, parse_age
from pipelines.decisions import COLUMNS as DECISION_COLUMNS
from pipelines.demo.answers import answer_wave
from pipelines.demo.population import build_population
from pipelines.demo.sampling import add_metadata

KEY = b"test-key"


@pytest.fixture(scope="module")
def child_raw(config, books):
    """40 well-behaved child responses in the RawResponses shape (typed answers, one per phone)."""
    book = books["child"]
    pop = build_population(config, book, 7)
    answers = answer_wave(pop, book, config, "2024-needs", 0.0, 7)
    eligible = np.flatnonzero(pop.units["age"].between(9, 16).to_numpy())[:40]
    raw = add_metadata(answers.iloc[eligible], book, config.waves[0], 7).reset_index(drop=True)
    raw["duration_s"] = 300.0
    raw.insert(0, "source_file", "data_raw/2024-needs/child/x.xlsx")
    raw.insert(1, "source_row", np.arange(1, len(raw) + 1))
    return raw


def _clean(raw, books, config, decisions=None):
    return clean_responses(raw.copy(), pd.DataFrame(columns=["source_file", "source_row", "column", "reason"]),
                           books["child"], config, "2024-needs", KEY, decisions)


def _rule(result, row):
    ex = result.exclusions.set_index("source_row")["rule"]
    return ex.get(row, "")


@pytest.mark.parametrize("text, years", [("8", 8), ("8岁", 8), ("八岁", 8), ("十二", 12), ("十五岁", 15),
                                         ("12周岁", 12), ("１２", 12), ("abc", None), ("", None)])
def test_parse_age(text, years):
    value = parse_age(text)
    assert (np.isnan(value) if years is None else value == years)


def test_clean_frame_keeps_everything_and_adds_up(child_raw, books, config):
    result = _clean(child_raw, books, config)
    assert result.counts == {"read": 40, "kept": 40, "excluded": 0}
    assert not {"phone", "resp_name", "room", "ip"} & set(result.frame.columns)
    assert result.frame["compound"].isin([c.id for c in config.compounds]).all()
    assert result.frame["respondent_key"].str.len().eq(64).all()


def test_speeder_threshold_is_strict(child_raw, books, config):
    raw = child_raw.copy()
    limit = config.thresholds.speeder_fraction_of_median * 300
    raw.loc[0, "duration_s"] = limit          # exactly at the limit: kept
    raw.loc[1, "duration_s"] = limit - 1      # under: a speeder
    result = _clean(raw, books, config)
    assert _rule(result, 1) == "" and _rule(result, 2) == "speeder"


def test_speeders_need_enough_responses_for_a_median(child_raw, books, config):
    raw = child_raw.iloc[: config.thresholds.speeder_min_responses - 1].copy()
    raw.loc[0, "duration_s"] = 1
    assert _rule(_clean(raw, books, config), 1) == ""


def test_straightliner_needs_the_minimum_items(child_raw, books, config):
    book = books["child"]
    items = [q.name for q in book.answer_questions if q.matrix and q.type == "select_one"]
    raw = child_raw.copy()
    for col in items:
        raw.loc[2, col] = 3
    result = _clean(raw, books, config)
    assert _rule(result, 3) == "straightliner"


def test_exact_duplicate_keeps_the_first(child_raw, books, config):
    raw = pd.concat([child_raw, child_raw.iloc[[4]]], ignore_index=True)
    raw.loc[40, "platform_id"] = "99"
    raw.loc[40, "source_row"] = 41
    raw.loc[40, "submitted_at"] = raw.loc[4, "submitted_at"] + pd.Timedelta(minutes=3)
    result = _clean(raw, books, config)
    assert _rule(result, 41) == "duplicate" and _rule(result, 5) == ""
    assert result.counts["read"] == result.counts["kept"] + result.counts["excluded"]


def test_same_phone_twice_is_a_duplicate_respondent(child_raw, books, config):
    raw = child_raw.copy()
    raw.loc[6, "phone"] = raw.loc[5, "phone"]
    raw.loc[6, "submitted_at"] = raw.loc[5, "submitted_at"] + pd.Timedelta(hours=1)
    result = _clean(raw, books, config)
    assert _rule(result, 7) == "duplicate_respondent"
    reason = result.exclusions.set_index("source_row").loc[7, "reason"]
    assert "保留最早一份" in reason


def test_unknown_compound_is_never_guessed(child_raw, books, config):
    raw = child_raw.copy()
    raw.loc[7, "compound"] = "金上小区"
    raw.loc[8, "compound"] = " 中福城小区\u3000"
    result = _clean(raw, books, config)
    assert _rule(result, 8) == "compound_unresolved"
    reason = result.exclusions.set_index("source_row").loc[8, "reason"]
    assert "金上小区" in reason and "jinshang" in reason  # the closest candidate is named, not applied
    kept = result.frame.set_index("response_id")
    rid = f"2024-needs-child-{raw.loc[8, 'platform_id']}"
    assert kept.loc[rid, "compound"] == "zhongfucheng"
    assert ((result.log["response_id"] == rid) & (result.log["rule"] == "compound_alias")).any()


@pytest.mark.parametrize("age, rule", [("7", "ineligible_age"), ("18", "ineligible_age"), ("8岁", ""),
                                       ("十七", ""), ("125", "")])
def test_child_age_eligibility(child_raw, books, config, age, rule):
    raw = child_raw.copy()
    raw.loc[9, "child_age"] = age
    result = _clean(raw, books, config)
    assert _rule(result, 10) == rule


def test_out_of_range_age_becomes_missing_and_is_logged(child_raw, books, config):
    raw = child_raw.copy()
    raw.loc[9, "child_age"] = "125"
    result = _clean(raw, books, config)
    rid = f"2024-needs-child-{raw.loc[9, 'platform_id']}"
    assert pd.isna(result.frame.set_index("response_id").loc[rid, "child_age"])
    log = result.log[(result.log.response_id == rid) & (result.log.column == "child_age")]
    assert log["rule"].tolist() == ["out_of_range"] and log["old"].tolist() == ["125"]


def test_skip_logic_contradiction_is_removed_and_logged(child_raw, books, config):
    book = books["child"]
    gated = next(q for q in book.answer_questions if q.relevant is not None and q.type == "select_multiple")
    raw = child_raw.copy()
    controller = sorted(gated.relevant.refs)[0]
    raw.loc[10, controller] = 2  # answered "no": the gated question was not shown
    raw.loc[10, gated.option_column(gated.codes[0])] = 1
    result = _clean(raw, books, config)
    rid = f"2024-needs-child-{raw.loc[10, 'platform_id']}"
    assert pd.isna(result.frame.set_index("response_id").loc[rid, gated.option_column(gated.codes[0])])
    assert ((result.log.response_id == rid) & (result.log.rule == "skip_logic_contradiction")).any()


def test_test_responses_are_excluded(child_raw, books, config):
    raw = child_raw.copy()
    raw.loc[11, "resp_name"] = "测试"
    assert _rule(_clean(raw, books, config), 12) == "test_response"


def test_phone_numbers_in_free_text_are_scrubbed(child_raw, books, config):
    raw = child_raw.copy()
    raw.loc[12, "suggestion"] = "请联系我13812345678或者 a.b@example.com"
    result = _clean(raw, books, config)
    text = result.frame.set_index("response_id").loc[f"2024-needs-child-{raw.loc[12, 'platform_id']}", "suggestion"]
    assert "13812345678" not in text and "example.com" not in text and "[电话已删除]" in text
    assert "13812345678" not in result.log.to_csv()


def test_decisions_are_reapplied(child_raw, books, config):
    raw = child_raw.copy()
    raw.loc[13, "duration_s"] = 1  # a speeder the evaluator knows was a paper form typed in fast
    raw.loc[14, "compound"] = "金上小区"
    ids = [f"2024-needs-child-{raw.loc[i, 'platform_id']}" for i in (13, 14, 15)]
    decisions = pd.DataFrame([
        [ids[0], "keep", "", "", "纸质问卷录入，用时不代表作答时间"],
        [ids[1], "set", "compound", "金尚小区", "电话核实为金尚小区"],
        [ids[2], "drop", "", "", "家长来电要求撤回问卷"],
    ], columns=DECISION_COLUMNS)
    result = _clean(raw, books, config, decisions)
    kept = result.frame.set_index("response_id")
    assert ids[0] in kept.index and kept.loc[ids[1], "compound"] == "jinshang" and ids[2] not in kept.index
    assert _rule(result, 16) == "decision_drop"
    rules = set(result.log["rule"])
    assert "decision_keep" in rules and any(r.startswith("decision_set") for r in rules)
