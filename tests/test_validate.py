"""The validate stage: GX suites generated from the codebook catch each kind of broken clean table."""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
try:
    import pipelines  # noqa: F401
except ImportError:  # running the file without the project installed (make test installs it)
    sys.path.insert(0, str(ROOT))

from pipelines.codebook import Codebook, load_codebook  # noqa: E402
from pipelines.config import Config, load_config  # noqa: E402
from pipelines.errors import ValidationFailed  # noqa: E402
from pipelines import validate as v  # noqa: E402

WAVE = "2025Q1"
INSTRUMENTS = ("parent", "child", "community", "activity")


# ----------------------------------------------------------------------------------------------- fixtures
def clean_frame(book: Codebook, config: Config, n: int = 40, seed: int = 1, wave: str = WAVE) -> pd.DataFrame:
    """A clean table as the clean stage writes it, satisfying every expectation of the codebook."""
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {
        "response_id": [f"{wave}-{book.instrument}-{i + 1}" for i in range(n)],
        "respondent_key": ["" if i % 4 == 0 else hashlib.sha256(f"{seed}-{i}".encode()).hexdigest()
                           for i in range(n)],
        "wave": [wave] * n, "instrument": [book.instrument] * n,
        "submitted_at": pd.Timestamp("2025-02-01") + pd.to_timedelta(np.arange(n), unit="h"),
        "duration_s": rng.uniform(120, 900, n), "channel": ["手机提交/微信"] * n,
    }
    for q in book.answer_questions:
        if q.type == "select_one":
            cols[q.name] = pd.array(rng.choice(q.codes, n), dtype="Int64")
            if q.correct is not None:
                cols[q.correct_column] = pd.array((cols[q.name] == q.correct).astype(int), dtype="Int64")
        elif q.type == "select_multiple":
            for code in q.codes:
                cols[q.option_column(code)] = pd.array(rng.integers(0, 2, n), dtype="Int64")
        elif q.type == "rank":
            ranks = np.argsort(rng.random((n, len(q.codes))), axis=1).argsort(axis=1) + 1  # top 3 ranked
            for j, code in enumerate(q.codes):
                cols[q.option_column(code)] = pd.array([r if r <= 3 else pd.NA for r in ranks[:, j]], dtype="Int64")
        elif q.type in ("integer", "decimal"):
            cols[q.name] = pd.array(rng.integers(int(q.min or 0), int(q.max or 100) + 1, n), dtype="Int64")
        elif q.role == "compound":
            cols[q.name] = rng.choice([c.id for c in config.compounds], n)
        else:
            text = ["希望多办<b>活动</b>" if i % 3 == 0 else pd.NA for i in range(n)]
            cols[q.name] = pd.array(text, dtype="string")
        if q.other_choice is not None:
            cols[q.other_column] = pd.array([pd.NA] * n, dtype="string")
    frame = pd.DataFrame(cols)
    for q in book.answer_questions:
        if q.relevant is not None:
            frame.loc[~q.relevant.applies(frame), q.clean_columns()] = pd.NA
    frame["stratum"] = frame["compound"] if "compound" in frame else "all"
    frame["base_weight"] = rng.uniform(2, 6, n)
    frame["weight"] = frame["base_weight"] * rng.uniform(0.8, 1.25, n)
    frame["review_flag"] = ["speeder" if i == 0 else "" for i in range(n)]
    return frame


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT)


@pytest.fixture(scope="module")
def books(config) -> dict[str, Codebook]:
    return {name: load_codebook(config.questionnaire_dir / f"{name}.xlsx") for name in INSTRUMENTS}


@pytest.fixture(scope="module")
def child(books) -> Codebook:
    return books["child"]


@pytest.fixture(scope="module")
def session():
    return v._Session()


@pytest.fixture(scope="module")
def good(child, config) -> pd.DataFrame:
    return clean_frame(child, config)


def validate(frame, book, config, session):
    return v.validate_frame(frame, book, config, WAVE, session=session)


def failures(table: pd.DataFrame, severity: str = "critical") -> set[tuple[str, str]]:
    bad = table[~table["success"] & (table["severity"] == severity)]
    return set(zip(bad["expectation"], bad["column"]))


# ------------------------------------------------------------------------------------- the generated suite
def test_importing_the_module_does_not_import_great_expectations():
    code = "import sys, pipelines.validate; print(any(m.split('.')[0] == 'great_expectations' for m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


def test_gx_import_defers_the_libraries_only_its_unused_expectations_need():
    """scipy.stats, altair and jsonschema stay unloaded through GX's import (half its cost), yet a later use
    of any of them gets the real module (the KS test p-value of N(0,1) at 0: 1.0; altair's schema version)."""
    code = ("import sys, pipelines.validate as v; v._gx(); "
            "print(sorted(type(sys.modules[m]).__name__ for m in v._DEFERRED_BY_GX)); "
            "import scipy.stats, altair; "
            "print(scipy.stats.kstest([0.0], 'norm').pvalue, type(altair.Chart).__name__, "
            "type(sys.modules['scipy.stats']).__name__, "
            "sys.modules['scipy.stats'].__spec__.loader.__class__.__name__)")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    deferred, used = out.stdout.strip().splitlines()
    assert deferred == "['_LazyModule', '_LazyModule', '_LazyModule']"
    assert used.split() == ["1.0", "type", "module", "SourceFileLoader"]


_MODEL_FIELDS = """
import sys, pipelines.validate as v
if sys.argv[1] == "generic":
    v._quick_field_copies = __import__("contextlib").nullcontext
v._gx()
import pydantic.v1 as p
seen, out = set(), []
todo = [p.BaseModel]
while todo:
    cls = todo.pop()
    for sub in cls.__subclasses__():
        if sub not in seen:
            seen.add(sub)
            todo.append(sub)
for cls in sorted(seen, key=lambda c: (c.__module__, c.__qualname__)):
    for name, f in cls.__fields__.items():
        out.append((cls.__module__, cls.__qualname__, name, repr(f), repr(f.field_info), f.shape, f.alias,
                    sorted(f.class_validators), [getattr(x, "__qualname__", repr(x)) for x in f.validators or []],
                    repr(f.sub_fields), f.model_config is cls.__config__, f.field_info.extra))
print(len(seen), hasattr(p.fields.ModelField, "__deepcopy__"))
# (addresses differ between processes; classes made at run time share names, so rows are sorted as text)
print(sorted(__import__("re").sub(r" at 0x[0-9a-f]+", " at 0x?", repr(row)) for row in out))
"""


def test_gx_import_s_quick_field_copies_give_the_same_models():
    """GX's ~300 pydantic models, created with `_quick_field_copies` (fields copied without the generic
    deepcopy path), have the same fields as with the generic path, field by field; the method is gone
    afterwards."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    runs = [subprocess.run([sys.executable, "-c", _MODEL_FIELDS, how], capture_output=True, text=True, env=env,
                           check=True).stdout.splitlines() for how in ("quick", "generic")]
    quick, generic = runs
    assert quick[0] == generic[0] and int(quick[0].split()[0]) > 200 and quick[0].endswith("False")
    assert quick[1] == generic[1] and len(quick[1]) > 100_000


def test_slots_deepcopy_is_deepcopy():
    """Field objects copied by `_slots_deepcopy` equal the generic copy, share nothing mutable with the
    original, and keep shared sub-objects shared (the same memo)."""
    import copy

    from pydantic.v1 import Field, fields

    info = fields.FieldInfo(Field(3, ge=1, extra_key=["a"]).default, ge=1, extra_key=["a"])
    pair = {"a": info, "b": info}
    with v._quick_field_copies():
        quick = copy.deepcopy(pair)
    generic = copy.deepcopy(pair)
    assert repr(quick) == repr(generic) and quick["a"] is quick["b"] and quick["a"] is not info
    assert quick["a"].extra == {"extra_key": ["a"]} and quick["a"].extra is not info.extra
    assert quick["a"].extra["extra_key"] is not info.extra["extra_key"]
    assert not hasattr(fields.FieldInfo, "__deepcopy__")


@pytest.mark.parametrize("instrument", INSTRUMENTS)
def test_suite_covers_every_clean_column(books, config, instrument):
    book = books[instrument]
    specs = v.build_suite(book, config)
    present = next(s for s in specs if s.name == "columns_present").kwargs["column_set"]
    for col in [*book.clean_columns(), "response_id", "respondent_key", "wave", "instrument", "weight",
                "base_weight"]:
        assert col in present
    checked = {s.column for s in specs if s.name != "columns_present"}
    for q in book.answer_questions:
        for col in q.clean_columns():
            text = q.type in ("text", "date") or col == q.other_column
            assert text or col in checked, f"{instrument}: no value expectation on {col}"
        if q.required:
            assert q.name in checked
    assert len({(s.name, s.column) for s in specs}) == len(specs)
    assert {s.severity for s in specs} <= {"critical", "warning"}


def test_suite_is_generated_from_the_codebook(child, config):
    specs = {(s.name, s.column): s for s in v.build_suite(child, config)}
    for q in child.answer_questions:
        if q.type == "select_one":
            assert specs[("code_in_choices", q.name)].kwargs["value_set"] == q.codes
        if q.relevant is not None:
            for col in q.clean_columns():
                assert specs[("skipped_when_hidden", col)].severity == "critical"
    age = specs[("number_in_range", "child_age")].kwargs
    assert (age["min_value"], age["max_value"]) == (child["child_age"].min, child["child_age"].max)
    assert specs[("compound_known", "compound")].kwargs["value_set"] == [c.id for c in config.compounds]
    assert specs[("required_answered", "grade")].severity == "warning"
    assert specs[("required_answered", "grade")].kwargs["mostly"] == v.REQUIRED_MOSTLY
    personal = specs[("no_personal_columns", "")].kwargs["column_set"]
    assert {"resp_name", "phone", "room", "ip", "name"} <= set(personal)


# ---------------------------------------------------------------------------------------- clean data passes
def test_clean_table_passes_every_expectation(good, child, config, session):
    table = validate(good, child, config, session)
    pd.testing.assert_frame_equal(table, validate(good, child, config, session))  # reruns: identical table
    assert list(table.columns) == v.VALIDATION_COLUMNS
    assert table["success"].all(), table[~table["success"]].to_string()
    assert set(table["wave"]) == {WAVE} and set(table["instrument"]) == {"child"}
    assert (table["unexpected_count"].fillna(0) == 0).all()
    v.raise_on_critical(table)


# ------------------------------------------------------------------------------- broken one way at a time
def _shown_row(frame, column, value):
    return frame.index[frame[column] == value][0]


def _break_code(f):
    f.loc[[3, 7], "gender"] = [9, 7]


def _break_range(f):
    f.loc[4, "child_age"] = 30


def _break_id(f):
    f.loc[5, "response_id"] = f.loc[6, "response_id"]


def _break_skip(f):
    f.loc[_shown_row(f, "participation", 2), "idea_adopted"] = 1


def _break_weight(f):
    f.loc[2, "weight"] = -1.0


def _break_personal(f):
    f["phone"] = "13912345678"


def _break_compound(f):
    f.loc[1, "compound"] = "atlantis"


BREAKAGES = {  # one validation each (a GX run of the child suite costs 1-3 s)
    "code outside the choice list": (_break_code, ("code_in_choices", "gender")),
    "number out of range": (_break_range, ("number_in_range", "child_age")),
    "duplicate response_id": (_break_id, ("response_id_unique", "response_id")),
    "answer where skip logic hides it": (_break_skip, ("skipped_when_hidden", "idea_adopted")),
    "negative weight": (_break_weight, ("weight_positive_finite", "weight")),
    "personal column present": (_break_personal, ("no_personal_columns", "phone")),
    "unknown compound": (_break_compound, ("compound_known", "compound")),
}


@pytest.mark.parametrize("case", list(BREAKAGES))
def test_each_breakage_fails_the_right_critical_expectation(good, child, config, session, case):
    breakage, expected = BREAKAGES[case]
    frame = good.copy()
    breakage(frame)
    table = validate(frame, child, config, session)
    assert failures(table) == {expected}
    assert not failures(table, "warning")
    with pytest.raises(ValidationFailed) as err:
        v.raise_on_critical(table)
    assert err.value.exit_code == 1
    assert err.value.what == f"1 critical expectation(s) failed: {WAVE}/child {expected[0]} on {expected[1]}"
    assert "validation/index.html" in err.value.hint
    row = table.set_index(["expectation", "column"]).loc[expected]
    assert row["unexpected_count"] >= 1 and row["severity"] == "critical"
    if case == "code outside the choice list":
        assert row["unexpected_count"] == 2 and "2 of 40 rows unexpected, e.g. 9, 7" in row["details"]
    assert "13912345678" not in " ".join(table["details"])  # values of text columns are never echoed


def test_more_breakages_each_caught_by_its_own_expectation(good, child, config, session):
    """Several more faults in different rows of one table: each fails its expectation and nothing else."""
    frame = good.copy()
    hidden = frame.index[frame["participation"] == 2]
    frame.loc[hidden[0], "used_activities__2"] = 0
    frame.loc[1, "needs__3"] = 2
    frame.loc[2, "need_rank__2"] = 9
    frame.loc[3, "sq_fire_correct"] = 3
    frame.loc[4, "respondent_key"] = "13912345678"
    frame.loc[5, "wave"] = "2031Q1"
    frame.loc[6, "instrument"] = "parent"
    frame.loc[7, "weight"] = np.inf
    frame.loc[8, "weight"] = np.nan
    frame.loc[9, "base_weight"] = 0.0
    frame.loc[10, "child_age"] = 5
    table = validate(frame, child, config, session)
    assert failures(table) == {
        ("skipped_when_hidden", "used_activities__2"), ("option_0_1", "needs__3"), ("rank_in_1_k", "need_rank__2"),
        ("score_0_1", "sq_fire_correct"), ("respondent_key_hashed", "respondent_key"), ("wave_declared", "wave"),
        ("instrument_matches", "instrument"), ("weight_positive_finite", "weight"), ("weight_present", "weight"),
        ("base_weight_positive_finite", "base_weight"), ("number_in_range", "child_age")}
    assert "13912345678" not in " ".join(table["details"])
    with pytest.raises(ValidationFailed) as err:
        v.raise_on_critical(table)
    assert err.value.what.startswith("11 critical expectation(s) failed: ")
    assert err.value.what.endswith("; … and 1 more")  # the first ten are named


def test_missing_columns_are_reported_not_crashed(good, child, config, session):
    dropped = ["pro_3", *(f"used_activities__{c}" for c in range(1, 6))]
    table = validate(good.drop(columns=dropped), child, config, session)
    present = table.set_index("expectation").loc["columns_present"]
    assert not present["success"] and present["unexpected_count"] == 6
    assert present["details"].endswith("missing: pro_3, used_activities__1, used_activities__2, used_activities__3, "
                                       "used_activities__4, used_activities__5")
    others = failures(table) - {("columns_present", present["column"])}
    assert others and {col for _, col in others} <= set(dropped)  # checks on them cannot run: said so
    assert all(d.endswith("not evaluated: the column is missing") for d in
               table[table["column"].isin(dropped) & ~table["success"]]["details"])
    with pytest.raises(ValidationFailed, match="columns_present on pro_3 used_activities__1"):
        v.raise_on_critical(table)


def test_codes_stored_as_text_are_read_as_numbers(good, child, config, session):
    frame = good.copy()
    frame["grade"] = frame["grade"].astype("string")  # "1", "2", … parse; a word does not
    frame.loc[0, "grade"] = "初二 13912345678"
    table = validate(frame, child, config, session)
    assert failures(table) == {("code_in_choices", "grade")}
    row = table.set_index(["expectation", "column"]).loc[("code_in_choices", "grade")]
    assert row["unexpected_count"] == 1 and row["details"].endswith("e.g. (text)")


# ----------------------------------------------------------------------------------------------- warnings
def test_warnings_for_missing_required_answers_and_review_flags_do_not_stop_the_run(good, child, config, session):
    frame = good.copy()
    frame.loc[0, "grade"] = pd.NA  # 1 of 40 = 2.5% missing: within the tolerance
    frame.loc[[0, 1, 2, 3], "pro_1"] = pd.NA  # 10%: warns
    shown = frame.index[frame["participation"] == 1]
    frame.loc[shown[:4], "idea_adopted"] = pd.NA  # missing where shown: warns
    frame.loc[shown, [f"used_activities__{c}" for c in range(1, 6)]] = pd.NA
    frame.loc[:7, "review_flag"] = "straight-liner"  # 20% flagged
    # an answer whose skip logic reads a missing value is not judged: we cannot know it was hidden
    frame.loc[shown[-1], "participation"] = pd.NA
    table = validate(frame, child, config, session)
    assert failures(table) == set()
    assert failures(table, "warning") == {("required_answered", "pro_1"), ("required_answered", "idea_adopted"),
                                          ("required_answered", "used_activities"), ("review_share", "review_flag")}
    assert "observed 20.0%" in table.set_index("expectation").loc["review_share", "details"]
    v.raise_on_critical(table)  # warnings never stop the run


def test_raise_on_critical_names_several_failures():
    table = pd.DataFrame([
        {"wave": "2025Q1", "instrument": "child", "expectation": "code_in_choices", "column": "gender",
         "severity": "critical", "success": False, "unexpected_count": 1, "details": ""},
        {"wave": "2025Q2", "instrument": "parent", "expectation": "weight_positive_finite", "column": "weight",
         "severity": "critical", "success": False, "unexpected_count": 2, "details": ""},
        {"wave": "2025Q2", "instrument": "parent", "expectation": "required_answered", "column": "gender",
         "severity": "warning", "success": False, "unexpected_count": 9, "details": ""},
    ], columns=v.VALIDATION_COLUMNS)
    with pytest.raises(ValidationFailed) as err:
        v.raise_on_critical(table, docs="reports/2025Q2/validation/index.html")
    assert err.value.what == ("2 critical expectation(s) failed: 2025Q1/child code_in_choices on gender; "
                              "2025Q2/parent weight_positive_finite on weight")
    assert "reports/2025Q2/validation/index.html" in err.value.hint
    v.raise_on_critical(table[table["severity"] == "warning"])


# ------------------------------------------------------------------------------------ run and Data Docs
def test_run_validation_builds_offline_data_docs(books, config, tmp_path):
    frames = {("2025Q1", name): clean_frame(books[name], config, wave="2025Q1", seed=i)
              for i, name in enumerate(INSTRUMENTS)}
    frames[("2024-needs", "activity")] = clean_frame(books["activity"], config, wave="2024-needs", seed=9)
    frames[("2025Q1", "activity")].loc[0, "ws_1"] = 8
    frames[("2025Q1", "child")]["phone"] = "13912345678"
    docs = tmp_path / "reports" / "2025Q1" / "validation"
    table = v.run_validation(frames, books, config, docs)
    assert list(table.columns) == v.VALIDATION_COLUMNS
    assert list(dict.fromkeys(zip(table["wave"], table["instrument"]))) == [
        ("2024-needs", "activity"), ("2025Q1", "activity"), ("2025Q1", "child"), ("2025Q1", "community"),
        ("2025Q1", "parent")]  # waves in config order, then instruments
    assert failures(table) == {("code_in_choices", "ws_1"), ("no_personal_columns", "phone")}
    assert not failures(table, "warning")  # the parent and community tables pass everything
    # one GX batch per instrument, its failures attributed back to the wave that has them
    failed = table[~table["success"]]
    assert set(zip(failed["wave"], failed["instrument"])) == {("2025Q1", "activity"), ("2025Q1", "child")}
    ws = table[(table["expectation"] == "code_in_choices") & (table["column"] == "ws_1")].set_index("wave")
    assert ws.loc["2025Q1", "unexpected_count"] == 1 and ws.loc["2024-needs", "unexpected_count"] == 0
    assert "1 of 40 rows unexpected, e.g. 8" in ws.loc["2025Q1", "details"]
    index = (docs / "index.html").read_text(encoding="utf-8")
    pages = sorted(docs.glob("validations/**/*.html"))
    suites = sorted(docs.glob("expectations/*.html"))
    assert len(pages) == 4 and len(suites) == 4  # one result page per instrument, covering its waves
    for page in [*pages, *suites]:
        assert page.relative_to(docs).as_posix() in index
    for page in [docs / "index.html", *pages, *suites]:
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text  # GX's scripts load from CDNs: the offline pages are plain HTML
        assert not re.search(r'<(?:link|img)\b[^>]*(?:href|src)="https?://', text)
        assert "13912345678" not in text
    assert index.count("✘ failed") == 2 and index.count("✔ passed") == 3
    with pytest.raises(ValidationFailed, match="2025Q1/activity code_in_choices on ws_1"):
        v.raise_on_critical(table)


def test_stacked_waves_are_judged_wave_by_wave(child, config, session):
    """One batch holds both waves; `mostly` and missing columns are still decided per wave."""
    q = next(q for q in child.answer_questions if q.required and q.type == "select_one" and q.relevant is None)
    a = clean_frame(child, config, wave="2025Q1", seed=3)
    b = clean_frame(child, config, wave="2025Q2", seed=4)
    a.loc[:3, q.name] = np.nan  # 4 of 40 unanswered (90%) in 2025Q1; 76 of 80 (95%) would pass overall
    b = b.drop(columns=[child.clean_columns()[-1]])
    table, result = session.validate({"2025Q1": a, "2025Q2": b}, child, config)
    got = table.set_index(["wave", "expectation", "column"])
    assert not got.loc[("2025Q1", "required_answered", q.name), "success"]
    assert got.loc[("2025Q1", "required_answered", q.name), "unexpected_count"] == 4
    assert got.loc[("2025Q2", "required_answered", q.name), "success"]
    present = table[table["expectation"] == "columns_present"].set_index("wave")
    assert present.loc["2025Q1", "success"] and not present.loc["2025Q2", "success"]
    assert present.loc["2025Q2", "column"] == child.clean_columns()[-1]
    assert not result.success  # GX's own verdict on the stacked batch agrees that something failed


def test_column_checks_of_a_rule_run_as_one_gx_expectation_over_cells(good, child, config, session):
    """GX costs ~20 ms per expectation: the ~100 per-column checks of the child suite run as one expectation
    per rule over `<column>=<value>` cells, and the per-column table is still one row per spec."""
    frame = good.copy()
    frame.loc[[3, 7], "gender"] = [9, 7]
    table, result = session.validate({WAVE: frame}, child, config)
    specs = v.build_suite(child, config)
    assert len(table) == len(specs)  # one row per generated check, as before
    packed = {s.name for s in specs if s.expectation in v._PACKED}
    per_rule = [r for r in result.results if r.expectation_config.kwargs.get("column") in packed]
    assert sorted(r.expectation_config.kwargs["column"] for r in per_rule) == sorted(packed)
    assert result.statistics["evaluated_expectations"] == len(result.results) < len(specs) / 3
    codes = next(r for r in per_rule if r.expectation_config.kwargs["column"] == "code_in_choices")
    assert not codes.success and codes.result["unexpected_count"] == 2
    assert "gender=1" in codes.expectation_config.kwargs["value_set"] and \
        "gender=9" not in codes.expectation_config.kwargs["value_set"]
    row = table.set_index(["expectation", "column"]).loc[("code_in_choices", "gender")]
    assert row["unexpected_count"] == 2 and row["details"].endswith("e.g. 9, 7")
    assert not result.success and result.statistics["unsuccessful_expectations"] == 1


def test_gx_builds_each_configuration_once_per_object_while_validating(child, config, session):
    """`_configurations_memoised`: GX 1.x builds an expectation's configuration anew on every access (~110 per
    expectation validated); inside the block each object builds it once, the same as GX's, and such a
    configuration turns back into one expectation; after it, GX's own methods are back."""
    spec = next(s for s in v.build_suite(child, config) if s.name == "code_in_choices")
    expectation = session._expectation(spec)
    fresh = expectation.configuration
    assert expectation.configuration is not fresh
    with v._configurations_memoised():
        memo = expectation.configuration
        assert expectation.configuration is memo and memo.to_json_dict() == fresh.to_json_dict()
        assert memo.kwargs["value_set"] == list(spec.kwargs["value_set"])
        assert session._expectation(spec).configuration is not memo  # another object: its own
        back = memo.to_domain_obj()  # (a memoised configuration: one expectation, and so one configuration)
        assert memo.to_domain_obj() is back and back.configuration is back.configuration
        assert back.configuration.to_json_dict() == fresh.to_json_dict() and back is not expectation
        assert fresh.to_domain_obj() is not fresh.to_domain_obj()  # (one GX made: GX's own path)
    assert expectation.configuration is not expectation.configuration
    assert memo.to_domain_obj() is not memo.to_domain_obj()


def test_metric_ids_are_gx_s_own_computed_once_per_content(session):
    """`_remember_ids`: every id is the one GX's `IDDict.to_id` computes for the same arguments; equal
    arguments of plain types are computed once; values that print differently in JSON (1, 1.0 and True;
    0.0 and -0.0; a list and a dict) get their own ids; other types and single keys take GX's path."""
    from great_expectations.core.id_dict import IDDict

    to_id = IDDict.to_id
    gx_id = to_id.computed_by_gx
    base = {"batch_id": "a batch no other test names", "column": "gender"}
    cases = [base, {**base, "x": 1}, {**base, "x": 1.0}, {**base, "x": True}, {**base, "x": 0.0},
             {**base, "x": -0.0}, {**base, "x": float("nan")}, {**base, "x": None}, {**base, "x": "1"},
             {**base, "value_set": [1, 2, 3]}, {**base, "value_set": (1, 2, 3)}, {**base, "value_set": [3, 2, 1]},
             {**base, "row_condition": {"a": [None, "b"], "c": 2.5}}, {**base, "row_condition": [["a", None]]},
             {**base, "x": np.int64(1)}, {**base, "x": pd.Timestamp("2025-01-01")}, {**base, 7: "a"},
             {"column": "gender"}, {}]
    before = len(to_id.known)
    ids = [IDDict(case).to_id() for case in cases]
    assert ids == [gx_id(IDDict(case)) for case in cases]
    assert [IDDict(case).to_id() for case in cases] == ids  # (again: now from memory)
    assert len(to_id.known) - before == 14  # (the plain ones with two or more keys, each once)
    assert len(set(ids[1:6])) == 5 and ids[1] != ids[8] and ids[9] == ids[10] != ids[11]
    assert IDDict(base).to_id(id_keys=["column"]) == gx_id(IDDict(base), ["column"]) == "column=gender"


def test_data_docs_views_compile_each_template_once(books, config, tmp_path, monkeypatch):
    """GX's Data Docs views (suites, results, index) each have a Jinja environment; they share compiled
    templates, so a build compiles each template at most once and a later build in the process none."""
    import jinja2
    compiled, original = [], jinja2.Environment.compile

    def compile(self, source, name=None, *args, **kwargs):
        if name is not None:  # (not GX's inline string templates)
            compiled.append(name)
        return original(self, source, name, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", compile)
    frames = {(WAVE, "activity"): clean_frame(books["activity"], config)}
    v.run_validation(frames, books, config, tmp_path / "first")
    assert "page.j2" in compiled or not compiled  # (none if an earlier test built Data Docs in this process)
    assert len(compiled) == len(set(compiled))
    before = len(compiled)
    v.run_validation(frames, books, config, tmp_path / "second")
    assert len(compiled) == before
    assert len(list((tmp_path / "second").glob("validations/**/*.html"))) == 1
    assert (tmp_path / "second" / "expectations" / "activity.html").exists()
    assert not v._DocsPageView().env.auto_reload and not v._DocsIndexPageView().env.auto_reload


def test_the_session_s_ephemeral_context_keeps_no_yaml_copy_of_its_config(session, books, config):
    """GX dumps an ephemeral context's config to YAML in memory on every asset added; the session's context
    skips that dump (nothing reads it) and still works from its `config`: every suite's assets are there."""
    for book in books.values():
        session.suite(book, config)
    store = session.context.variables.store
    assert list(store.list_keys()) == []
    assets = {a.name for a in session.context.data_sources.get("clean_tables").assets}
    assert {b.instrument for b in books.values()} | {f"{b.instrument}.cells" for b in books.values()} <= assets
