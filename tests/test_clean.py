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


def _wave(raw, wave, duration):
    """The 40 responses as another wave's export (own platform ids, source file and durations)."""
    out = raw.copy()
    out["platform_id"] = out["platform_id"].astype(str) + f"-{wave}"
    out["source_file"] = f"data_raw/{wave}/child/x.xlsx"
    out["duration_s"] = duration
    return out


def _same_results(together, alone):
    for a, b in zip(together, alone):
        for name in ("frame", "log", "exclusions", "funnel", "missing"):
            x, y = getattr(a, name), getattr(b, name)
            pd.testing.assert_frame_equal(x, y, check_exact=True)
            assert x.dtypes.tolist() == y.dtypes.tolist() and type(x.index) is type(y.index)
        assert a.counts == b.counts


def test_waves_cleaned_together_give_each_wave_its_own_result(child_raw, books, config):
    """Stacked cleaning (`clean_waves`) gives every wave exactly what cleaning it alone gives, including the
    two rules that look beyond a row: the speeder limit is each wave's own median, and the same person with
    the same answers in two waves (a panel) is no duplicate, while a duplicate within a wave still is."""
    from pipelines.clean import clean_waves

    book = books["child"]
    a = _wave(child_raw, "2024-needs", 300.0)
    b = _wave(child_raw, "2024Q4", 900.0)
    a.loc[1, "duration_s"] = 200.0   # above a third of a's median (300 s): kept in a
    b.loc[1, "duration_s"] = 200.0   # under a third of b's median (900 s): a speeder in b
    b = pd.concat([b, b.iloc[[4]]], ignore_index=True)  # an exact duplicate within b
    b.loc[40, ["platform_id", "source_row"]] = ["dup-2024Q4", 41]
    b.loc[40, "submitted_at"] = b.loc[4, "submitted_at"] + pd.Timedelta(minutes=3)
    b.loc[7, "phone"] = b.loc[6, "phone"]  # a repeat respondent within b
    b.loc[7, "submitted_at"] = b.loc[6, "submitted_at"] + pd.Timedelta(hours=1)
    c = _wave(child_raw, "2025Q1", 300.0).iloc[:25].copy()
    c["resp_name"] = "测试"  # every response a test: nothing kept
    a.loc[2, "compound"] = "金上小区"
    decisions = pd.DataFrame([[f"2024Q4-child-{b.loc[3, 'platform_id']}", "drop", "", "", "撤回"],
                              [f"2024-needs-child-{a.loc[2, 'platform_id']}", "set", "compound", "金尚小区", "核实"]],
                             columns=DECISION_COLUMNS)
    missing = pd.DataFrame(columns=["source_file", "source_row", "column", "reason"])
    parts = [("2024-needs", a, missing), ("2024Q4", b, missing), ("2025Q1", c, missing)]
    together = clean_waves(parts, book, config, KEY, decisions)
    alone = [clean_responses(raw, m, book, config, wave, KEY, decisions) for wave, raw, m in parts]
    _same_results(together, alone)
    rules = [dict(zip(r.exclusions["source_row"], r.exclusions["rule"])) for r in together]
    assert 2 not in rules[0] and rules[1][2] == "speeder"
    assert rules[1][41] == "duplicate" and rules[1][8] == "duplicate_respondent" and rules[1][4] == "decision_drop"
    assert together[0].counts["kept"] == 40 and together[2].counts == {"read": 25, "kept": 0, "excluded": 25}
    assert set(together[0].frame["wave"]) == {"2024-needs"} and together[1].frame.index.equals(pd.RangeIndex(37))


def test_waves_whose_exports_differ_are_cleaned_one_by_one(child_raw, books, config):
    from pipelines.clean import clean_waves

    a = _wave(child_raw, "2024-needs", 300.0)
    b = _wave(child_raw, "2024Q4", 300.0).drop(columns=["ip"])  # a column fewer: not stacked
    missing = pd.DataFrame(columns=["source_file", "source_row", "column", "reason"])
    parts = [("2024-needs", a, missing), ("2024Q4", b, missing)]
    _same_results(clean_waves(parts, books["child"], config, KEY),
                  [clean_responses(raw, m, books["child"], config, wave, KEY) for wave, raw, m in parts])
