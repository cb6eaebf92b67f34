"""Validate clean tables with Great Expectations suites generated from the codebook.

`build_suite` turns the codebook and config into `ExpectationSpec`s — nothing is written per question, so
the suite cannot drift from the questionnaire. Critical expectations are what cleaning guarantees (codes in
their lists, numbers in range, skip logic resolved, no personal data, sane weights): a failure is a bug or
unmapped input and stops the run (exit 1). Warnings are data quality the evaluator should see but that can
legitimately happen (a few required answers missing, many rows flagged for review).

GX validates a prepared copy of each table (`_prepare`): numbers as float64 in one block (GX filters the
whole frame for every column check, so a single block is ~10x cheaper than nullable extension columns),
free text and other non-numeric answers as 1.0/NaN "answered" indicators and text in a code column as
"(text)" (no respondent text reaches GX results or the Data Docs), plus helper columns computed with
`Relevance.applies`: `__hidden__<col>` (the answer where skip logic hides the question) and
`__answered__<question>` (1/0 where shown) — cheaper than GX row_conditions, which query the frame per metric.
`great_expectations` is imported only inside functions: importing it costs seconds.
"""
from __future__ import annotations

import contextlib
import copy
import copyreg
import gc
import html
import logging
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook, Question
from pipelines.config import Config
from pipelines.errors import ValidationFailed
from pipelines.lazy import deferred

VALIDATION_COLUMNS = ["wave", "instrument", "expectation", "column", "severity", "success", "unexpected_count",
                      "details"]
META_COLUMNS = ("response_id", "respondent_key", "wave", "instrument", "weight", "base_weight")
ALWAYS_PERSONAL = ("ip", "phone", "name")
# `required` is enforced by the online platforms, but paper entry, SPSS imports and cleaning (out of range →
# missing, `(空)`) legitimately leave a few required answers empty; more than 5% points at a mapping problem.
REQUIRED_MOSTLY = 0.95
REVIEW_SHARE_MAX = 0.10
HIDDEN, ANSWERED = "__hidden__", "__answered__"
KEY_OK, FLAGGED = "__respondent_key_ok", "__review_flagged"
_HEX_KEY = re.compile(r"^(?:[0-9a-f]{16,})?$")
_SAMPLE = 5
_SHOWS_VALUES = ("ExpectColumnValuesToBeInSet", "ExpectColumnValuesToBeBetween", "ExpectColumnValuesToBeUnique")


@dataclass(frozen=True)
class ExpectationSpec:
    """One generated expectation. `kwargs` are the GX expectation's arguments; their `column` may be a helper
    column of the prepared frame (see `_prepare`), while `column` is the clean column reported."""

    name: str
    column: str
    severity: str
    expectation: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    why: str = ""


def build_suite(book: Codebook, config: Config) -> list[ExpectationSpec]:
    """Every expectation of one instrument's clean table, in a stable order."""
    specs: list[ExpectationSpec] = []

    def add(name, reported, severity, expectation, why, **kwargs):
        if expectation.startswith("ExpectColumn"):
            kwargs.setdefault("column", reported)
        specs.append(ExpectationSpec(name, reported, severity, expectation, kwargs, why))

    add("columns_present", "", "critical", "ExpectTableColumnsToMatchSet",
        "every codebook column and the id, wave and weight columns are in the clean table",
        column_set=[*META_COLUMNS[:4], *book.clean_columns(), *META_COLUMNS[4:]], exact_match=False)
    personal = sorted({*ALWAYS_PERSONAL, *(q.name for q in book.questions if q.personal)})
    add("no_personal_columns", "", "critical", "ExpectTableColumnsToNotContain",
        f"personal columns never reach the clean table: {', '.join(personal)}", column_set=personal)
    add("response_id_unique", "response_id", "critical", "ExpectColumnValuesToBeUnique", "one row per response")
    add("response_id_present", "response_id", "critical", "ExpectColumnValuesToNotBeNull", "every row has an id")
    add("respondent_key_hashed", "respondent_key", "critical", "ExpectColumnValuesToBeInSet",
        "the respondent key is empty or a hex HMAC digest, never a raw identifier", column=KEY_OK, value_set=[1])
    add("wave_declared", "wave", "critical", "ExpectColumnValuesToBeInSet", "the wave is declared in project.toml",
        value_set=[w.id for w in config.waves])
    add("instrument_matches", "instrument", "critical", "ExpectColumnValuesToBeInSet",
        "rows belong to this questionnaire", value_set=[book.instrument])
    for q in book.answer_questions:
        _question_specs(q, add, [c.id for c in config.compounds])
    population = config.populations.get(book.population)
    cap = population.total if population is not None else 1e9
    if population is not None:
        add("weight_present", "weight", "critical", "ExpectColumnValuesToNotBeNull",
            f"every respondent of a weighted instrument (population {book.population}) has a weight")
    for col in ("weight", "base_weight"):
        add(f"{col}_positive_finite", col, "critical", "ExpectColumnValuesToBeBetween",
            f"weights are positive and finite, and no respondent stands for more than the population ({cap:g})",
            min_value=0, max_value=cap, strict_min=True)
    add("review_share", "review_flag", "warning", "ExpectColumnMeanToBeBetween",
        f"under {REVIEW_SHARE_MAX:.0%} of rows carry a review_flag for the evaluator", column=FLAGGED,
        max_value=REVIEW_SHARE_MAX, strict_max=True)
    return specs


def _question_specs(q: Question, add: Callable, compound_ids: list[str]) -> None:
    cols = q.clean_columns()
    if q.type == "select_one":
        add("code_in_choices", q.name, "critical", "ExpectColumnValuesToBeInSet",
            f"codes of list {q.list_name}" + (f" (scale {q.scale})" if q.scale else ""), value_set=q.codes)
    elif q.type == "select_multiple":
        for col in cols[: len(q.codes)]:
            add("option_0_1", col, "critical", "ExpectColumnValuesToBeInSet", "multi-select option is 0 or 1",
                value_set=[0, 1])
    elif q.type == "rank":
        for col in cols[: len(q.codes)]:
            add("rank_in_1_k", col, "critical", "ExpectColumnValuesToBeInSet", f"rank positions 1..{len(q.codes)}",
                value_set=list(range(1, len(q.codes) + 1)))
    elif q.type in ("integer", "decimal") and (q.min is not None or q.max is not None):
        bounds = f"{'' if q.min is None else f'{q.min:g}'}..{'' if q.max is None else f'{q.max:g}'}"
        add("number_in_range", q.name, "critical", "ExpectColumnValuesToBeBetween",
            f"codebook range {bounds} (cleaning sets values outside it to missing)", min_value=q.min,
            max_value=q.max)
    if q.role == "compound":
        add("compound_known", q.name, "critical", "ExpectColumnValuesToBeInSet", "compound ids of project.toml",
            value_set=compound_ids)
    if q.correct is not None:
        add("score_0_1", q.correct_column, "critical", "ExpectColumnValuesToBeInSet", "quiz score is 0 or 1",
            value_set=[0, 1])
    if q.required:  # helper: 1 answered / 0 not (any option chosen, any item ranked), NaN where hidden
        where = f" where shown ({q.relevant.expr})" if q.relevant is not None else ""
        helper = q.relevant is not None or q.type in ("select_multiple", "rank")
        add("required_answered", q.name, "warning", "ExpectColumnValuesToBeInSet" if helper else
            "ExpectColumnValuesToNotBeNull", f"required question answered{where} in at least {REQUIRED_MOSTLY:.0%} "
            "of rows", mostly=REQUIRED_MOSTLY, **({"column": ANSWERED + q.name, "value_set": [1]} if helper else {}))
    if q.relevant is not None:  # helper: the answer where the skip logic hides the question, else NaN
        for col in cols:
            add("skipped_when_hidden", col, "critical", "ExpectColumnValuesToBeNull",
                f"empty where the skip logic hides it (shown only when {q.relevant.expr})", column=HIDDEN + col)


def _prepare(frame: pd.DataFrame, book: Codebook, specs: list[ExpectationSpec]) -> pd.DataFrame:
    """The copy of `frame` GX validates (see the module docstring). Built from numpy arrays column by column:
    pandas' per-column Series operations cost more than the few hundred rows they work on."""
    text_sets = {s.kwargs["column"] for s in specs if "value_set" in s.kwargs
                 and any(isinstance(v, str) for v in s.kwargs["value_set"])} | {"response_id"}
    valued = {s.kwargs.get("column") for s in specs if s.expectation in _SHOWS_VALUES}
    n = len(frame)
    out: dict[str, Any] = {}
    for col, s in frame.items():
        dtype = s.dtype
        if col in text_sets:
            values = s.to_numpy(dtype=object, copy=True)
            values[pd.isna(values)] = None
            out[col] = values
        elif pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            out[col] = s.to_numpy(dtype="float64", na_value=np.nan)
        elif col in valued:  # codes stored as text: numbers where they parse, a "(text)" marker elsewhere
            parsed = pd.to_numeric(s, errors="coerce")
            out[col] = parsed.to_numpy(dtype="float64", na_value=np.nan)
            if (bad := (parsed.isna() & s.notna()).to_numpy()).any():
                out[col] = out[col].astype(object)
                out[col][bad] = "(text)"
        else:
            answered = _nonblank(s) if dtype == object or isinstance(dtype, pd.StringDtype) else s.notna().to_numpy()
            out[col] = np.where(answered, 1.0, np.nan)
    key = frame["respondent_key"].to_numpy(dtype=object) if "respondent_key" in frame else np.full(n, "", object)
    out[KEY_OK] = np.array([_HEX_KEY.match(str(v)) is not None for v in np.where(pd.isna(key), "", key)], "float64")
    out[FLAGGED] = _nonblank(frame["review_flag"]).astype("float64") if "review_flag" in frame else np.zeros(n)
    for q in book.answer_questions:
        cols = [c for c in q.clean_columns() if c in frame]
        shown = None if q.relevant is None else q.relevant.applies(frame).to_numpy(bool)
        if q.required and (q.relevant is not None or q.type in ("select_multiple", "rank")):
            answered = np.zeros(n, bool)
            for c in cols[: len(q.codes) or 1]:
                answered |= ~pd.isna(out[c])
            out[ANSWERED + q.name] = answered.astype("float64") if shown is None else \
                np.where(shown, answered.astype("float64"), np.nan)
        if shown is not None:
            hidden = ~shown  # judged only where every answer the logic reads is known
            for ref in q.relevant.refs:
                col = (book[ref].clean_columns() or [ref])[0] if ref in book else ref
                hidden &= frame[col].notna().to_numpy(dtype=bool) if col in frame else False
            for col in cols:
                out[HIDDEN + col] = np.where(hidden, out[col], np.nan if out[col].dtype.kind == "f" else None)
    return pd.DataFrame(out, index=pd.RangeIndex(n))


def _nonblank(s: pd.Series) -> np.ndarray:
    """True where a text answer is present and not only whitespace (`str()` of any other value counts)."""
    values = s.to_numpy(dtype=object)
    present = pd.notna(values)
    present[present] = [str(v).strip() != "" for v in values[present]]
    return present


# Libraries GX imports on its own import but only for expectations, metrics and renderers this pipeline does not
# use (KL divergence and KS tests, JSON schema checks, altair charts): about half of GX's import time.
_DEFERRED_BY_GX = ("scipy.stats", "altair", "jsonschema")


def _slots_deepcopy(self, memo):
    """`copy.deepcopy` of an object whose state is its `__slots__` only, as the generic path makes it (a new
    object through `cls.__new__`, each set slot deep-copied in slot order, with the same memo) without that
    path's per-object state tuple and dict. (An immutable value, which deepcopy returns as it is without
    recording it, is not passed to it.)"""
    cls = self.__class__
    copied = cls.__new__(cls)
    memo[id(self)] = copied
    atomic = copy._deepcopy_atomic
    for name in copyreg._slotnames(cls):
        try:
            value = getattr(self, name)
        except AttributeError:  # (an unset slot is not copied)
            continue
        kind = type(value)
        if copy._deepcopy_dispatch.get(kind) is not atomic and not issubclass(kind, type):
            value = copy.deepcopy(value, memo)
        setattr(copied, name, value)
    return copied


@contextlib.contextmanager
def _quick_field_copies():
    """While GX is imported, pydantic's field objects are deep-copied by `_slots_deepcopy`.

    pydantic (v1, which GX uses) deep-copies every inherited field of every model class it creates; GX makes
    ~300 such classes on import, and those copies took ~0.7 s of its ~2.5 s. The generic path (`__reduce_ex__`,
    then a state tuple and dict to copy) is most of that; the result is the same objects. Only classes whose
    copies take the generic path (slots, no `__dict__`, no copy hooks) get the method, and lose it afterwards."""
    try:
        from pydantic.v1 import fields
    except ImportError:  # (pydantic 1.x, possibly compiled: then nothing is changed)
        from pydantic import fields
    patched = []
    for cls in (fields.ModelField, fields.FieldInfo):
        generic = (cls.__dictoffset__ == 0 and cls.__reduce_ex__ is object.__reduce_ex__
                   and cls.__reduce__ is object.__reduce__ and cls.__getstate__ is object.__getstate__
                   and not any(hasattr(cls, hook) for hook in ("__setstate__", "__deepcopy__", "__copy__")))
        if generic:
            try:
                cls.__deepcopy__ = _slots_deepcopy
            except TypeError:  # (a compiled class)
                continue
            patched.append(cls)
    try:
        yield
    finally:
        for cls in patched:
            del cls.__deepcopy__


def _gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    if _CUSTOM:  # (imported and set up before)
        import great_expectations as gx
        return gx
    with deferred(_DEFERRED_BY_GX), _quick_field_copies():  # (nothing to defer once GX is imported)
        import great_expectations as gx
        _define_custom_expectations()
        _define_docs_views()
        _remember_ids()
    # GX's import leaves ~250,000 objects that live as long as the process; every full garbage collection
    # would walk them all again (~0.3 s each, one or two per run). Freezing them leaves only newer objects
    # to the collector (nothing frozen is freed, and modules never are).
    gc.freeze()
    return gx


class _NotPlain(Exception):
    pass


_PLAIN = (str, int, bool, type(None))


def _plain_key(value):
    """A hashable copy of a JSON-like value that keeps every type (1, 1.0 and True differ), or `_NotPlain`."""
    kind = type(value)
    if kind is float:  # (0.0 and -0.0 are equal, and write differently)
        return kind, value.hex()
    if kind in _PLAIN:
        return kind, value
    if kind is list or kind is tuple:
        return kind, tuple(_plain_key(item) for item in value)
    if kind is dict:
        items = tuple((name, _plain_key(item)) for name, item in value.items())
        if not all(type(name) is str for name, _ in items):
            raise _NotPlain
        return kind, tuple(sorted(items, key=lambda pair: pair[0]))
    raise _NotPlain


def _remember_ids() -> None:
    """GX's metric ids, computed once per distinct content.

    Validation builds ~3,400 `MetricConfiguration`s, each naming its domain and value arguments by
    `IDDict.to_id`: a JSON conversion of the arguments, `json.dumps` and an MD5, about a quarter of the
    validation's time. Most are the same few hundred argument sets (a column's domain, again and again).
    Arguments of plain JSON types are looked up by a typed, hashable copy of themselves; the id stored is the
    one GX computed the first time, so every id is GX's own. Anything else takes GX's path unchanged."""
    from great_expectations.core.id_dict import IDDict

    if hasattr(IDDict.to_id, "computed_by_gx"):  # (done before)
        return
    compute = IDDict.to_id
    known: dict = {}

    def to_id(self, id_keys=None, id_ignore_keys=None):
        if id_keys is not None or id_ignore_keys is not None or len(self) < 2 or self._id_ignore_keys:
            return compute(self, id_keys, id_ignore_keys)
        try:
            key = (type(self), _plain_key(dict(self)))
        except _NotPlain:
            return compute(self)
        found = known.get(key)
        if found is None:
            if len(known) > 100_000:  # (a bound for a long-lived notebook)
                known.clear()
            found = known[key] = compute(self)
        return found

    to_id.computed_by_gx, to_id.known = compute, known  # (GX's own, and the memory: for the tests)
    IDDict.to_id = to_id


_CUSTOM: dict[str, type] = {}


def _define_custom_expectations() -> None:
    """GX has no "column must not exist" expectation: a small BatchExpectation over `table.columns`."""
    from great_expectations.expectations.expectation import BatchExpectation

    class ExpectTableColumnsToNotContain(BatchExpectation):
        """Expect none of the columns in column_set to be in the table."""

        column_set: list
        metric_dependencies = ("table.columns",)
        success_keys = ("column_set",)

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
            found = sorted(set(metrics["table.columns"]) & set(self.column_set))
            return {"success": not found, "result": {"observed_value": found}}

    _CUSTOM["ExpectTableColumnsToNotContain"] = ExpectTableColumnsToNotContain


def _define_docs_views() -> None:
    """GX's page and index views, sharing compiled templates; the Data Docs site names them in its config
    (`_docs_context`).

    Each GX view builds its own Jinja environment, so a site build compiled the same page templates once per
    view (suites, results, index: 52 compilations of 24 templates, a third of the build's time). Compiled
    code does not depend on the environment; Jinja's bytecode cache checks it against each template's source."""
    from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
    from jinja2 import BytecodeCache

    class CompiledTemplates(BytecodeCache):
        def __init__(self):
            self.code: dict[tuple[str, str], Any] = {}

        def load_bytecode(self, bucket):
            bucket.code = self.code.get((bucket.key, bucket.checksum))

        def dump_bytecode(self, bucket):
            self.code[(bucket.key, bucket.checksum)] = bucket.code

    compiled = CompiledTemplates()

    class SharedTemplates:
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.env.bytecode_cache = compiled
            self.env.auto_reload = False  # (GX's package templates: no stat of each on its ~1,900 lookups)

    class PageView(SharedTemplates, DefaultJinjaPageView):
        pass

    class IndexPageView(SharedTemplates, DefaultJinjaIndexPageView):
        pass

    globals().update(_DocsPageView=PageView, _DocsIndexPageView=IndexPageView)


@contextlib.contextmanager
def _configurations_memoised():
    """While GX validates a batch, each expectation object builds its `configuration` once, not every time.

    GX 1.x recomputes `Expectation.configuration` (a pydantic `.dict()` of the expectation, its value set
    included, into a new ExpectationConfiguration) on every access, and validating one expectation reads it
    ~110 times (once per domain, success and runtime key, per metric it depends on): two thirds of GX's
    validation time here. The configuration depends only on the expectation's fields, which validation does
    not change; the objects are GX's own short-lived copies, so the memo lives for one batch only and holds them
    (an id cannot be reused meanwhile). Such a configuration also turns back into one expectation (below).
    Without that property or `to_domain_obj` (another GX version) this does nothing."""
    from great_expectations.expectations.expectation import Expectation
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    original = Expectation.__dict__.get("configuration")
    to_domain_obj = ExpectationConfiguration.__dict__.get("to_domain_obj")
    if not isinstance(original, property) or to_domain_obj is None:
        yield
        return
    memo: dict[int, tuple[Any, Any]] = {}
    made: dict[int, list] = {}  # id(configuration made here) -> [it, its expectation or None]

    def configuration(self):
        hit = memo.get(id(self))
        if hit is None or hit[0] is not self:
            hit = memo[id(self)] = (self, original.fget(self))
            made[id(hit[1])] = [hit[1], None]
        return hit[1]

    def domain_object(self):
        # GX's metric lookups turn a memoised configuration back into an expectation ~10 times each, only to
        # read its runtime arguments: one expectation per configuration made here (and so one configuration
        # of it). Configurations GX made itself (the suite's copies) get a new expectation each time.
        entry = made.get(id(self))
        if entry is None or entry[0] is not self:
            return to_domain_obj(self)
        if entry[1] is None:
            entry[1] = to_domain_obj(self)
        return entry[1]

    Expectation.configuration = property(configuration, doc=original.__doc__)
    ExpectationConfiguration.to_domain_obj = domain_object
    try:
        yield
    finally:
        Expectation.configuration = original
        ExpectationConfiguration.to_domain_obj = to_domain_obj


def _unsaved(context):
    """An ephemeral GX context that does not "save" its project config after each change.

    GX saves it on every data asset and batch definition added (and Data Docs site): for an ephemeral context
    that is a YAML dump into an in-memory store nobody reads (the context works from its `config` object),
    about half of setting up the run's suites (~0.13 s of ~0.24 s). Only this context object is changed."""
    if type(context).__name__ == "EphemeralDataContext" and hasattr(context, "_save_project_config"):
        context._save_project_config = lambda: None
    return context


class _Session:
    """One ephemeral GX context with a pandas data source; per instrument, two suites and batch definitions:
    the table's own checks on the prepared frame, and the packed cell checks on its long frame (`_Cells`).

    Batches run `batch.validate(suite)`: a Checkpoint re-serialises its suite on every run to check it is
    fresh (~0.7 s per table), and its actions are not needed — the Data Docs are built once, at the end."""

    def __init__(self):
        self.gx = _gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig
        self.context = _unsaved(self.gx.get_context(mode="ephemeral"))
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_pandas("clean_tables")
        self.instruments: dict[str, tuple] = {}
        self.results: list[Any] = []

    def suite(self, book: Codebook, config: Config) -> tuple:
        if book.instrument not in self.instruments:
            specs = build_suite(book, config)
            cells = _Cells(specs)
            table_specs = [i for i, s in enumerate(specs) if i not in cells.member_of]
            # notes and meta go on the results afterwards: here they would slow every check
            parts = [self._part(book.instrument, [self._expectation(specs[i]) for i in table_specs], table_specs),
                     self._part(f"{book.instrument}.cells", cells.expectations(self._expectation), None)]
            self.instruments[book.instrument] = (specs, cells, parts)
        return self.instruments[book.instrument]

    def _expectation(self, spec: ExpectationSpec):
        import great_expectations.expectations as gxe
        return (_CUSTOM.get(spec.expectation) or getattr(gxe, spec.expectation))(**spec.kwargs, severity=spec.severity)

    def _part(self, name: str, expectations: list, members: list[int] | None) -> tuple:
        suite = self.context.suites.add(self.gx.ExpectationSuite(name, expectations))
        batches = self.source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        return suite, batches, {e.id: k for k, e in enumerate(suite.expectations)}, members

    def validate(self, frames: dict[str, pd.DataFrame], book: Codebook, config: Config,
                 run_name: str | None = None) -> tuple[pd.DataFrame, Any]:
        """Validate one instrument's tables of several waves as one GX result, then split it by wave.

        GX's cost is almost all per expectation and per batch (~20 ms for each of ~130 column checks), hardly
        per row. So the waves are stacked (`_stack`, with wave-prefixed response ids), and the column checks
        of one rule — codes in their lists, answered, empty where hidden — run as one expectation over the
        table's cells (`_Cells`). `COMPLETE` results carry the failing rows' positions, which `_wave_row`
        attributes back to each wave and column."""
        from great_expectations.core.run_identifier import RunIdentifier
        specs, cells, parts = self.suite(book, config)
        combined, spans = _stack({w: _prepare(f, book, specs) for w, f in frames.items()}, specs)
        long = cells.frame(combined)
        result_format = {"result_format": "COMPLETE", "partial_unexpected_count": _SAMPLE,
                         "return_unexpected_index_query": False, "exclude_unexpected_values": True}
        results, by_spec = [], {}
        for (suite, batches, index, members), data in zip(parts, (combined, long)):
            if not suite.expectations:
                continue
            with _configurations_memoised():
                result = batches.get_batch(batch_parameters={"dataframe": data}).validate(suite,
                                                                                       result_format=result_format)
            results.append(result)
            for r in result.results:
                k = index[r.expectation_config.id]
                if members is not None:  # a table check: one spec
                    i = members[k]
                    by_spec[i] = r
                    r.expectation_config.notes = f"{specs[i].severity}: {specs[i].why}"
                    r.expectation_config.meta = {"rule": specs[i].name, "column": specs[i].column, "order": i}
                else:
                    by_spec.update(cells.split(k, r, combined))
        result = _merged(results, book.instrument)
        result.meta["run_id"] = RunIdentifier(run_name=run_name or " + ".join(frames))
        self.results.append(result)
        rows = [_wave_row(wave, book.instrument, specs[i], by_spec[i], frames[wave], combined, spans[wave])
                for wave in frames for i in sorted(by_spec)]
        for r in result.results:  # the positions were needed only to split by wave: keep the pages light
            if r.result and "unexpected_index_list" in r.result:
                r.result["unexpected_index_list"] = r.result["unexpected_index_list"][:_SAMPLE]
        table = pd.DataFrame(rows, columns=VALIDATION_COLUMNS)
        return table.astype({"success": bool, "unexpected_count": "Int64"}), result


_PACKED = ("ExpectColumnValuesToBeInSet", "ExpectColumnValuesToNotBeNull", "ExpectColumnValuesToBeNull")
_EMPTY, _ANSWERED_CELL = "(empty)", "(answered)"


class _Cells:
    """The column checks of one rule packed into one GX expectation over the table's cells.

    A rule such as `code_in_choices` is one check per question; GX would evaluate each separately at ~20 ms
    apiece. Here every checked cell becomes one row of a long frame, in a column named after the rule,
    holding `"<column>=<value>"` (a missing answer is no row for an in-set check, `=(empty)` or
    `=(answered)` for the null checks), and the rule is one `ExpectColumnValuesToBeInSet` over the union of
    each column's allowed keys. A rule's column checks are laid out in blocks as long as the stacked table, so
    a failing row's position gives back both the check (column) and the table row."""

    def __init__(self, specs: list[ExpectationSpec]):
        rules: dict[str, list[int]] = {}
        for i, s in enumerate(specs):
            if s.expectation in _PACKED and "column" in s.kwargs:
                rules.setdefault(s.name, []).append(i)
        self.rules = rules
        self.member_of = {i: rule for rule, members in rules.items() for i in members}
        self.specs = specs

    def expectations(self, make: Callable) -> list:
        out = []
        for rule, members in self.rules.items():
            specs = [self.specs[i] for i in members]
            allowed = list(dict.fromkeys(key for s in specs for key in _allowed(s)))
            mostly = {s.kwargs.get("mostly") for s in specs}
            kwargs = {"column": rule, "value_set": allowed, **({"mostly": mostly.pop()} if len(mostly) == 1 and
                                                                 None not in mostly else {})}
            out.append(make(ExpectationSpec(rule, "", specs[0].severity, "ExpectColumnValuesToBeInSet", kwargs)))
        return out

    def frame(self, combined: pd.DataFrame) -> pd.DataFrame:
        """One categorical column per rule; block b (rows b·n … b·n+n−1, n = table rows) of a rule's column
        holds the cells of its b-th column check, so the frame is as long as the largest rule, not all."""
        n = len(combined)
        depth = max((len(members) for members in self.rules.values()), default=0)
        columns = {}
        for rule, members in self.rules.items():
            categories: dict[str, int] = {}
            codes = np.full(n * depth, -1, dtype=np.int32)
            for block, i in enumerate(members):
                spec = self.specs[i]
                if spec.kwargs["column"] not in combined:
                    continue
                local, keys = _cell_keys(spec, combined[spec.kwargs["column"]].to_numpy())
                used = np.flatnonzero(local >= 0)
                seen, first = np.unique(local[used], return_index=True)
                index = np.full(len(keys) + 1, -1, np.int32)  # (the last entry keeps a skipped cell's -1)
                for k in seen[np.argsort(first)]:  # categories in order of first appearance, as read
                    index[k] = categories.setdefault(keys[k], len(categories))
                codes[block * n:(block + 1) * n] = index[local]
            # categorical: GX fingerprints every batch by hashing its values, ~2x cheaper on codes than strings
            columns[rule] = pd.Categorical.from_codes(codes, categories=list(categories))
        return pd.DataFrame(columns, index=pd.RangeIndex(n * depth))

    def split(self, k: int, r, combined: pd.DataFrame) -> dict[int, Any]:
        """The packed result `r` of rule number `k` as one result per member spec (positions in `combined`)."""
        specs = self.specs
        rule = list(self.rules)[k]
        members = self.rules[rule]
        n = len(combined)
        r.expectation_config.notes = f"{specs[members[0]].severity}: {specs[members[0]].why} " \
                                     f"({len(members)} column(s), each value written <column>=<value>)"
        r.expectation_config.meta = {"rule": rule, "column": _sample_columns([specs[i].column for i in members]),
                                     "order": members[0]}
        positions = np.asarray((r.result or {}).get("unexpected_index_list") or [], dtype=np.int64)
        out = {}
        for block, i in enumerate(members):
            column = specs[i].kwargs["column"]
            if column not in combined:
                out[i] = _Outcome(False, {}, {"raised_exception": True,
                                              "exception_message": f"column {column} is missing"})
                continue
            mine = positions[(positions >= block * n) & (positions < (block + 1) * n)] - block * n
            out[i] = _Outcome(not len(mine), {"unexpected_index_list": mine.tolist()}, r.exception_info)
        return out


def _key_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _allowed(spec: ExpectationSpec) -> list[str]:
    if spec.expectation == "ExpectColumnValuesToNotBeNull":
        return [f"{spec.column}={_ANSWERED_CELL}"]
    if spec.expectation == "ExpectColumnValuesToBeNull":
        return [f"{spec.column}={_EMPTY}"]
    return [f"{spec.column}={_key_text(v)}" for v in spec.kwargs["value_set"]]


def _cell_keys(spec: ExpectationSpec, values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The `<column>=<value>` key of each cell as an index into the returned keys (each distinct value is
    formatted once; keys that read the same share an entry in the frame's categories), -1 where the check
    skips the cell."""
    missing = pd.isna(values)
    if spec.expectation == "ExpectColumnValuesToNotBeNull":
        return (~missing).astype(np.int32), [f"{spec.column}={_EMPTY}", f"{spec.column}={_ANSWERED_CELL}"]
    in_set = spec.expectation == "ExpectColumnValuesToBeInSet"
    keys = [] if in_set else [f"{spec.column}={_EMPTY}"]
    local = np.full(len(values), -1 if in_set else 0, dtype=np.int32)
    present = values[~missing]
    if len(present):
        found, uniques = pd.factorize(present)
        local[~missing] = found + len(keys)
        keys += [f"{spec.column}={_key_text(u.item() if isinstance(u, np.generic) else u)}" for u in uniques]
    return local, keys


def _sample_columns(columns: list[str]) -> str:
    return " ".join(columns[:_SAMPLE]) + (f" … ({len(columns)})" if len(columns) > _SAMPLE else "")


def _merged(results: list, suite_name: str):
    """One validation result of an instrument from its table and cell batches (one Data Docs page)."""
    first = results[0]
    for other in results[1:]:
        first.results.extend(other.results)
    done = first.results
    ok = sum(bool(r.success) for r in done)
    first.success = ok == len(done)
    first.suite_name = suite_name
    first.statistics = {"evaluated_expectations": len(done), "successful_expectations": ok,
                        "unsuccessful_expectations": len(done) - ok,
                        "success_percent": 100.0 * ok / len(done) if done else None}
    return first


def _stack(prepared: dict[str, pd.DataFrame], specs: list[ExpectationSpec]) -> tuple[pd.DataFrame, dict]:
    """One frame of every wave's prepared table, and each wave's row span in it.

    A required column missing from one wave is left out of the stack (so `columns_present` fails rather than
    seeing the other waves' values); any other column present in some wave is kept (a personal column found
    in one wave fails `no_personal_columns`)."""
    required = set(next((s.kwargs["column_set"] for s in specs if s.name == "columns_present"), []))
    spans, start = {}, 0
    for wave, frame in prepared.items():
        spans[wave] = (start, start + len(frame))
        start += len(frame)
        frame["response_id"] = np.array([None if v is None else f"{wave}/{v}" for v in frame["response_id"]],
                                        dtype=object)
    parts = list(prepared.values())
    combined = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    missing = [c for c in combined.columns if c in required and any(c not in p for p in parts)]
    return combined.drop(columns=missing), spans


def _wave_row(wave: str, instrument: str, spec: ExpectationSpec, r, frame: pd.DataFrame, combined: pd.DataFrame,
              span: tuple[int, int]) -> dict:
    """The validation row of one wave from a result over the stacked waves (see `_Session.validate`)."""
    lo, hi = span
    res = dict(r.result or {})
    positions = res.get("unexpected_index_list")
    if positions is not None:  # a column map expectation: keep this wave's failing rows
        keep = [pos for pos in positions if lo <= pos < hi]
        column = spec.kwargs.get("column")
        values = combined[column].iloc[keep[:_SAMPLE]].tolist() if keep and column in combined else []
        count, rows = len(keep), hi - lo
        res = {"element_count": rows, "unexpected_count": count, "partial_unexpected_list": values[:_SAMPLE]}
        mostly = spec.kwargs.get("mostly")
        if mostly is None:
            success = count == 0
        else:
            base = rows if spec.expectation == "ExpectColumnValuesToNotBeNull" or column not in combined else \
                int(combined[column].iloc[lo:hi].notna().sum())
            success = base == 0 or (base - count) / base >= mostly
        r = _Outcome(success, res, r.exception_info)
    elif spec.name == "review_share":
        column = spec.kwargs["column"]
        share = combined[column].iloc[lo:hi].mean() if column in combined and hi > lo else None
        ok = share is None or share < spec.kwargs["max_value"]
        r = _Outcome(ok, {"observed_value": share}, r.exception_info)
    return _row(wave, instrument, spec, r, frame)


@dataclass
class _Outcome:
    """A GX expectation result narrowed to one wave (same attributes `_row` reads)."""

    success: bool
    result: dict
    exception_info: Any


def _row(wave: str, instrument: str, spec: ExpectationSpec, r, frame: pd.DataFrame) -> dict:
    res = dict(r.result or {})
    success, count, column, details = bool(r.success), res.get("unexpected_count"), spec.column, spec.why
    info = r.exception_info or {}  # one dict, or one per metric
    errors = [e for e in ([info] if "raised_exception" in info else info.values())
              if isinstance(e, dict) and (e.get("raised_exception") or e.get("exception_message"))]
    if errors:
        message = "the column is missing" if spec.column and spec.column not in frame else \
            (str(errors[0].get("exception_message") or "error").splitlines() or ["error"])[0]
        success, count, details = False, None, f"{details}; not evaluated: {message}"
    elif spec.name in ("columns_present", "no_personal_columns"):
        wanted = set(spec.kwargs["column_set"])
        odd = sorted(wanted - set(frame.columns) if spec.name == "columns_present" else wanted & set(frame.columns))
        success, count = not odd, len(odd)  # judged per wave: the stacked table has every wave's columns
        column = " ".join(odd[:_SAMPLE]) + (" …" if len(odd) > _SAMPLE else "")
        details += f"; {'missing' if spec.name == 'columns_present' else 'present'}: {', '.join(odd)}" if odd else ""
    elif spec.name == "review_share":
        share = res.get("observed_value")
        details += "; no rows" if share is None else f"; observed {share:.1%}"
    elif count:
        details += f"; {count} of {res.get('element_count', 0)} rows unexpected"
        values = res.get("partial_unexpected_list") or []
        if values and spec.kwargs.get("column") == spec.column and spec.expectation in _SHOWS_VALUES:
            details += ", e.g. " + ", ".join(str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
                                             for v in values[:_SAMPLE])
    return {"wave": wave, "instrument": instrument, "expectation": spec.name, "column": column,
            "severity": spec.severity, "success": success, "unexpected_count": pd.NA if count is None else count,
            "details": details}


def validate_frame(frame: pd.DataFrame, book: Codebook, config: Config, wave: str | None = None,
                   session: _Session | None = None) -> pd.DataFrame:
    """The validation table (VALIDATION_COLUMNS) of one clean (wave, instrument) table."""
    if wave is None:
        waves = frame["wave"].dropna().unique() if "wave" in frame else []
        wave = str(waves[0]) if len(waves) == 1 else ""
    return (session or _Session()).validate({wave: frame}, book, config)[0]


def _ordered(frames: dict, config: Config) -> list[tuple[str, str]]:
    order = {w.id: i for i, w in enumerate(config.waves)}
    return sorted(frames, key=lambda k: (order.get(k[0], len(order)), k[0], k[1]))


def validate_instrument(frames: dict[tuple[str, str], pd.DataFrame], instrument: str, books: dict[str, Codebook],
                        config: Config, session: _Session) -> tuple:
    """(table, GX result) of one instrument's tables in `frames` (its waves in config order), as
    `validate_tables` makes them: a run may validate an instrument as soon as its tables are made."""
    waves = {w: frames[(w, i)] for w, i in _ordered(frames, config) if i == instrument}
    return session.validate(waves, books[instrument], config)


def validate_tables(frames: dict[tuple[str, str], pd.DataFrame], books: dict[str, Codebook], config: Config,
                    docs_dir: Path | None, known: dict | None = None, session: _Session | None = None) -> tuple:
    """Validate every (wave, instrument) table, one GX batch per instrument, and build the Data Docs
    (unless `docs_dir` is None: then `docs_for(outcomes, ...)` builds them later).

    `known` maps an instrument to an earlier (table, GX result) of the same tables (the run's cache), reused
    instead of validating again. Returns the combined table (waves in config order, then instruments), the
    newly computed {instrument: (table, GX result)} and all of them."""
    known = known or {}
    keys = _ordered(frames, config)
    instruments = sorted({k[1] for k in keys})
    outcomes, new = {i: known[i] for i in instruments if i in known}, {}
    for instrument in instruments:
        if instrument not in outcomes:
            session = session or _Session()
            outcomes[instrument] = new[instrument] = validate_instrument(frames, instrument, books, config, session)
    parts = {i: outcomes[i][0] for i in instruments}
    tables = [parts[i][parts[i]["wave"] == w] for w, i in keys]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=VALIDATION_COLUMNS)
    table = table.astype({"success": bool, "unexpected_count": "Int64"})
    if docs_dir is not None:
        docs_for(outcomes, table, docs_dir)
    return table, new, outcomes


def docs_for(outcomes: dict, table: pd.DataFrame, docs_dir: Path) -> Path:
    """The Data Docs of `validate_tables`' outcomes; its combined `table` gives the index's (wave,
    instrument) rows, in order."""
    instruments = sorted(outcomes)
    return build_data_docs([outcomes[i][1] for i in instruments], docs_dir,
                           entries=[(w, i, outcomes[i][0]) for w, i in dict.fromkeys(zip(table["wave"],
                                                                                           table["instrument"]))])


def run_validation(frames: dict[tuple[str, str], pd.DataFrame], books: dict[str, Codebook], config: Config,
                   docs_dir: Path) -> pd.DataFrame:
    """Validate every (wave, instrument) table, build the Data Docs into `docs_dir`, return the combined table."""
    return validate_tables(frames, books, config, docs_dir)[0]


def _docs_context(gx, base: Path):
    context = _unsaved(gx.get_context(mode="ephemeral"))
    view = {"module_name": __name__, "class_name": "_DocsPageView"}
    context.add_data_docs_site(site_name="validation", site_config={
        "class_name": "SiteBuilder", "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(base)},
        "site_section_builders": {"expectations": {"view": view}, "validations": {"view": view}},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                               "view": {**view, "class_name": "_DocsIndexPageView"}}})
    return context


def _key(result):
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier, ValidationResultIdentifier)
    run = result.meta["run_id"]
    return ValidationResultIdentifier(ExpectationSuiteIdentifier(result.suite_name), run,
                                      f"{run.run_name}-{result.suite_name}")


def build_data_docs(results: Sequence[Any], out_dir: Path, entries: Sequence[tuple] | None = None) -> Path:
    """GX Data Docs of validation results in `out_dir`: index.html, one page per result and per suite.

    `entries` are (wave, instrument, validation table) rows for the index, which lists each wave's status
    and links it to its instrument's page (one GX result covers every wave of an instrument)."""
    gx = _gx()
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier
    out_dir = Path(out_dir)
    for name in ("index.html", "validations", "expectations", "static"):
        target = out_dir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    context = _docs_context(gx, out_dir)
    suites = {}
    for result in results:
        suites.setdefault(result.suite_name, [r.expectation_config for r in result.results])
        context.validation_results_store.set(_key(result), result)
    for name, configs in suites.items():  # (suite.add_expectation_configuration is quadratic)
        expectations = [copy.copy(c.to_domain_obj()) for c in sorted(configs, key=lambda c: c.meta["order"])]
        context.expectations_store.add(ExpectationSuiteIdentifier(name), gx.ExpectationSuite(name, expectations))
    context.build_data_docs(site_names=["validation"])
    keys = {r.suite_name: _key(r) for r in results}
    if entries is None:
        index = [(r.meta["run_id"].run_name, r.suite_name, bool(r.success), _key(r)) for r in results]
    else:
        index = [(w, i, bool(t.loc[t["wave"] == w, "success"].all()), keys[i]) for w, i, t in entries if i in keys]
    _make_offline(out_dir, index)
    return out_dir


_REMOTE = [re.compile(p, re.S | re.I) for p in (
    r"<script\b[^>]*>.*?</script>", r"<link\b[^>]*href=\"https?://[^>]*>", r"<img\b[^>]*src=\"https?://[^>]*>",
    r"<button\b[^>]*clearTableFilters[^>]*>.*?</button>")]
_JS_TABLE = r"<table\s+id=\"[^\"]*\"\s+class=\"[^\"]*{kind}[^\"]*\"[^>]*data-toggle=\"table\"[^>]*>\s*</table>"
_STYLE = ("<style>table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
          "vertical-align:top}</style>")


def _make_offline(out_dir: Path, entries: list) -> None:
    """GX pages load Bootstrap/jQuery/vega from CDNs and fill the index tables with JavaScript. Drop every
    script and remote asset (the pages' content is rendered HTML) and write the index tables statically."""
    for page in out_dir.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        for pattern in _REMOTE:
            text = pattern.sub("", text)
        text = re.sub(r"url\('https?://[^']*'\)", "none", text).replace("</head>", _STYLE + "</head>", 1)
        if page == out_dir / "index.html":
            rows = "".join(
                f"<tr><td>{'✔ passed' if ok else '✘ failed'}</td><td>{html.escape(w)}</td><td>{html.escape(i)}"
                f"</td><td><a href=\"validations/{'/'.join(html.escape(str(p)) for p in key.to_tuple())}.html\">"
                f"{html.escape(w)} / {html.escape(i)}</a></td></tr>" for w, i, ok, key in entries)
            suites = "".join(f"<li><a href=\"expectations/{html.escape(name)}.html\">{html.escape(name)}</a></li>"
                             for name in sorted({i for _, i, _, _ in entries}))
            static = (f"<h4>Validation results</h4><table><thead><tr><th>Status</th><th>Wave</th><th>Instrument</th>"
                      f"<th>Result page</th></tr></thead><tbody>{rows}</tbody></table>"
                      f"<h4>Expectation suites</h4><ul>{suites}</ul>")
            text = re.sub(_JS_TABLE.format(kind="validation-results"), "", text)
            text = re.sub(_JS_TABLE.format(kind="expectation_suites"), lambda m: static, text)
        page.write_text(text, encoding="utf-8")


def raise_on_critical(table: pd.DataFrame, docs: str = "reports/<quarter>/validation/index.html") -> None:
    """Raise ValidationFailed (exit 1) naming every failed critical expectation."""
    failed = table[(table["severity"] == "critical") & ~table["success"].astype(bool)]
    if failed.empty:
        return
    names = [f"{r.wave}/{r.instrument} {r.expectation} on {r.column or 'the table'}" for r in failed.itertuples()]
    more = f"; … and {len(names) - 10} more" if len(names) > 10 else ""
    raise ValidationFailed(None, f"{len(names)} critical expectation(s) failed: {'; '.join(names[:10])}{more}",
                           f"see {docs} for the failing values; fix the cleaning rule or the input and run again")
