"""Validate clean tables with Great Expectations suites generated from the codebook.

`build_suite` turns the codebook and config into a list of `ExpectationSpec`s: nothing is written per
question, so the suite cannot drift from the questionnaire. Critical expectations are the ones cleaning
guarantees (codes in their lists, numbers in range, skip logic resolved, no personal data, sane weights):
a failure there is a bug or unmapped input, and the run stops (exit 1). Warnings describe data quality the
evaluator should see but that may legitimately happen (a few required answers missing, many flagged rows).

GX sees a prepared copy of each table (`_prepare`): numbers as float64 (one consolidated block — GX copies
the frame for every column check, and a single block makes that ~10x cheaper), free-text and other
non-numeric answers as 1.0/NaN "answered" indicators (so no respondent text reaches GX results or the
Data Docs), and 0/1 helper columns for skip logic computed with `Relevance.applies`.

`great_expectations` is imported only inside functions: importing it costs seconds.
"""
from __future__ import annotations

import html
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook, Question
from pipelines.config import Config
from pipelines.errors import ValidationFailed

VALIDATION_COLUMNS = ["wave", "instrument", "expectation", "column", "severity", "success", "unexpected_count",
                      "details"]
META_COLUMNS = ("response_id", "respondent_key", "wave", "instrument", "weight", "base_weight")
ALWAYS_PERSONAL = ("ip", "phone", "name")
# `required` is enforced by the online platforms, but paper entry, SPSS imports and cleaning (out-of-range →
# missing, `(空)`) legitimately leave a few required answers empty; more than 5% points at a mapping problem.
REQUIRED_MOSTLY = 0.95
REVIEW_SHARE_MAX = 0.10
HIDDEN, SHOWN, ANSWERED = "__hidden__", "__shown__", "__answered__"
KEY_OK, FLAGGED = "__respondent_key_ok", "__review_flagged"
_HEX_KEY = re.compile(r"^(?:[0-9a-f]{16,})?$")
_SAMPLE = 5
_SHOWS_VALUES = ("ExpectColumnValuesToBeInSet", "ExpectColumnValuesToBeBetween", "ExpectColumnValuesToBeUnique")


@dataclass(frozen=True)
class ExpectationSpec:
    """One generated expectation: `kwargs` are the GX expectation's arguments (its `column` may be a helper
    column of the prepared frame; `column` is the clean column reported); `when` names a 0/1 helper column
    and restricts the check to rows where it is 1 (a GX row_condition)."""

    name: str
    column: str
    severity: str
    expectation: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    why: str = ""
    when: str | None = None


def build_suite(book: Codebook, config: Config) -> list[ExpectationSpec]:
    specs: list[ExpectationSpec] = []

    def add(name, reported, severity, expectation, why, when=None, **kwargs):
        if expectation.startswith("ExpectColumn"):
            kwargs.setdefault("column", reported)
        specs.append(ExpectationSpec(name, reported, severity, expectation, kwargs, why, when))

    expected = [*META_COLUMNS[:4], *book.clean_columns(), *META_COLUMNS[4:]]
    add("columns_present", "", "critical", "ExpectTableColumnsToMatchSet",
        "every codebook column and the id, wave and weight columns are in the clean table",
        column_set=expected, exact_match=False)
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
    compound_ids = [c.id for c in config.compounds]
    for q in book.answer_questions:
        _question_specs(q, book, add, compound_ids)
    population = config.populations.get(book.population)
    cap = population.total if population is not None else 1e9
    if population is not None:
        add("weight_present", "weight", "critical", "ExpectColumnValuesToNotBeNull",
            f"every respondent of a weighted instrument ({book.population}) has a weight")
    for col in ("weight", "base_weight"):
        add(f"{col}_positive_finite", col, "critical", "ExpectColumnValuesToBeBetween",
            f"weights are positive and finite, and no respondent stands for more than the population ({cap:g})",
            min_value=0, max_value=cap, strict_min=True)
    add("review_share", "review_flag", "warning", "ExpectColumnMeanToBeBetween",
        f"under {REVIEW_SHARE_MAX:.0%} of rows carry a review_flag for the evaluator", column=FLAGGED,
        max_value=REVIEW_SHARE_MAX, strict_max=True)
    return specs


def _question_specs(q: Question, book: Codebook, add, compound_ids: list[str]) -> None:
    cols = q.clean_columns()
    if q.type == "select_one":
        add("code_in_choices", q.name, "critical", "ExpectColumnValuesToBeInSet",
            f"codes of list {q.list_name}" + (f" (scale {q.scale})" if q.scale else ""), value_set=q.codes)
    elif q.type == "select_multiple":
        for col in cols[: len(q.codes)]:
            add("option_0_1", col, "critical", "ExpectColumnValuesToBeInSet", "multi-select option is 0 or 1",
                value_set=[0, 1])
    elif q.type == "rank":
        k = len(q.codes)
        for col in cols:
            add("rank_in_1_k", col, "critical", "ExpectColumnValuesToBeInSet", f"rank positions 1..{k}",
                value_set=list(range(1, k + 1)))
    elif q.type in ("integer", "decimal") and (q.min is not None or q.max is not None):
        add("number_in_range", q.name, "critical", "ExpectColumnValuesToBeBetween",
            f"range {q.min:g}..{q.max:g} from the codebook (cleaning sets values outside it to missing)"
            if q.min is not None and q.max is not None else "range from the codebook",
            min_value=q.min, max_value=q.max)
    if q.role == "compound":
        add("compound_known", q.name, "critical", "ExpectColumnValuesToBeInSet",
            "compound ids of project.toml", value_set=compound_ids)
    if q.correct is not None:
        add("score_0_1", q.correct_column, "critical", "ExpectColumnValuesToBeInSet", "quiz score is 0 or 1",
            value_set=[0, 1])
    if q.required:
        where = f" where shown ({q.relevant.expr})" if q.relevant is not None else ""
        grouped = q.type in ("select_multiple", "rank")  # answered = any option chosen / item ranked
        add("required_answered", q.name if grouped else cols[0], "warning", "ExpectColumnValuesToNotBeNull",
            f"required question answered{where} in at least {REQUIRED_MOSTLY:.0%} of rows",
            when=SHOWN + q.name if q.relevant is not None else None, mostly=REQUIRED_MOSTLY,
            column=ANSWERED + q.name if grouped else cols[0])
    if q.relevant is not None:
        for col in cols:
            add("skipped_when_hidden", col, "critical", "ExpectColumnValuesToBeNull",
                f"empty where the skip logic hides it (shown only when {q.relevant.expr})", when=HIDDEN + q.name)


def _prepare(frame: pd.DataFrame, book: Codebook, specs: list[ExpectationSpec]) -> pd.DataFrame:
    """The copy of `frame` GX validates (see the module docstring)."""
    keep_text = {s.kwargs["column"] for s in specs if s.expectation == "ExpectColumnValuesToBeInSet"
                 and any(isinstance(v, str) for v in s.kwargs["value_set"])} | {"response_id"}
    value_checked = {s.kwargs.get("column") for s in specs if s.name not in ("required_answered",
                                                                             "skipped_when_hidden")}
    out: dict[str, Any] = {}
    for col in frame.columns:
        s = frame[col]
        if col in keep_text:
            out[col] = s.astype(object).where(s.notna(), None).to_numpy()
        elif pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
            out[col] = s.to_numpy(dtype="float64", na_value=np.nan)
        elif col in value_checked and _numeric_text(s) is not None:
            out[col] = _numeric_text(s)
        elif col in value_checked:
            out[col] = s.astype(object).where(s.notna(), None).to_numpy()  # wrong type: let GX report it
        else:
            answered = s.notna() & s.astype(str).str.strip().ne("") if s.dtype == object or \
                pd.api.types.is_string_dtype(s.dtype) else s.notna()
            out[col] = np.where(answered.to_numpy(dtype=bool), 1.0, np.nan)
    key = frame["respondent_key"] if "respondent_key" in frame else pd.Series("", index=frame.index)
    out[KEY_OK] = key.fillna("").astype(str).map(lambda k: bool(_HEX_KEY.match(k))).to_numpy(dtype="float64")
    flag = frame["review_flag"] if "review_flag" in frame else pd.Series("", index=frame.index)
    out[FLAGGED] = flag.fillna("").astype(str).str.strip().ne("").to_numpy(dtype="float64")
    for q in book.answer_questions:
        if q.type in ("select_multiple", "rank"):
            options = [c for c in q.clean_columns()[: len(q.codes)] if c in frame]
            answered = frame[options].notna().any(axis=1).to_numpy(dtype=bool) if options else False
            out[ANSWERED + q.name] = np.where(answered, 1.0, np.nan)
        if q.relevant is None:
            continue
        shown = q.relevant.applies(frame).to_numpy(dtype=bool)
        known = np.ones(len(frame), dtype=bool)  # hidden only when every answer the logic reads is known
        for ref in q.relevant.refs:
            ref_cols = book[ref].clean_columns() if ref in book else [ref]
            col = ref_cols[0] if ref_cols else ref
            known &= frame[col].notna().to_numpy(dtype=bool) if col in frame else False
        out[SHOWN + q.name] = shown.astype("float64")
        out[HIDDEN + q.name] = (~shown & known).astype("float64")
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))


def _numeric_text(s: pd.Series) -> np.ndarray | None:
    try:
        return pd.to_numeric(s, errors="raise").to_numpy(dtype="float64", na_value=np.nan)
    except (ValueError, TypeError):
        return None


def _gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import great_expectations as gx
    _custom_expectations()
    return gx


_CUSTOM: dict[str, type] = {}


def _custom_expectations() -> dict[str, type]:
    """GX has no "column must not exist" expectation: a small BatchExpectation over `table.columns`."""
    if not _CUSTOM:
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
    return _CUSTOM


class _Session:
    """One ephemeral GX context with a pandas data source; one suite and batch definition per instrument.

    Batches are validated with `batch.validate(suite)`: a Checkpoint's freshness check re-serialises the
    suite on every run (~0.7 s per table here) and its actions are not needed — Data Docs are built once,
    at the end, by `build_data_docs`."""

    def __init__(self):
        gx = self.gx = _gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_pandas("clean_tables")
        self.instruments: dict[str, tuple[list[ExpectationSpec], Any, Any, dict[str, int]]] = {}
        self.results: list[Any] = []

    def suite(self, book: Codebook, config: Config):
        if book.instrument not in self.instruments:
            import great_expectations.expectations as gxe
            from great_expectations.expectations.row_conditions import Column
            specs = build_suite(book, config)
            expectations = []
            for spec in specs:  # notes and meta are added to the results later: they slow every validation
                cls = _CUSTOM.get(spec.expectation) or getattr(gxe, spec.expectation)
                extra = {"row_condition": Column(spec.when) == 1} if spec.when else {}
                expectations.append(cls(**spec.kwargs, **extra, severity=spec.severity))
            suite = self.context.suites.add(self.gx.ExpectationSuite(name=book.instrument,
                                                                     expectations=expectations))
            index = {e.id: i for i, e in enumerate(suite.expectations)}
            batches = self.source.add_dataframe_asset(name=book.instrument).add_batch_definition_whole_dataframe(
                "whole table")
            self.instruments[book.instrument] = (specs, suite, batches, index)
        return self.instruments[book.instrument]

    def validate(self, frame: pd.DataFrame, book: Codebook, config: Config, wave: str) -> pd.DataFrame:
        from great_expectations.core.run_identifier import RunIdentifier
        specs, suite, batches, index = self.suite(book, config)
        batch = batches.get_batch(batch_parameters={"dataframe": _prepare(frame, book, specs)})
        result = batch.validate(suite, result_format={"result_format": "BASIC",
                                                      "partial_unexpected_count": _SAMPLE})
        result.meta["run_id"] = RunIdentifier(run_name=wave)
        result.meta["wave"], result.meta["instrument"] = wave, book.instrument
        self.results.append(result)
        rows = {}
        for r in result.results:
            i = index[r.expectation_config.id]
            spec = specs[i]
            rows[i] = _row(wave, book.instrument, spec, r, frame)
            r.expectation_config.notes = f"{spec.severity}: {spec.why}"
            r.expectation_config.meta = {"rule": spec.name, "column": spec.column, "order": i}
        return pd.DataFrame([rows[i] for i in sorted(rows)], columns=VALIDATION_COLUMNS)


def _row(wave: str, instrument: str, spec: ExpectationSpec, r, frame: pd.DataFrame) -> dict:
    res = dict(r.result or {})
    success, count, column, details = bool(r.success), res.get("unexpected_count"), spec.column, spec.why
    if r.exception_info and r.exception_info.get("raised_exception"):
        success, count = False, None
        message = str(r.exception_info.get("exception_message") or "").splitlines()[:1]
        details += f"; could not be evaluated: {message[0] if message else 'error'}"
    elif spec.name == "columns_present":
        missing = sorted(set(spec.kwargs["column_set"]) - set(frame.columns))
        count, column = len(missing), " ".join(missing[:_SAMPLE]) + (" …" if len(missing) > _SAMPLE else "")
        details += f"; missing: {', '.join(missing)}" if missing else ""
    elif spec.name == "no_personal_columns":
        found = res.get("observed_value") or []
        count, column = len(found), " ".join(found)
        details += f"; present: {', '.join(found)}" if found else ""
    elif spec.name == "review_share":
        share = res.get("observed_value")
        details += f"; observed {share:.1%}" if share is not None else ""
    elif count:
        total = res.get("element_count") or 0
        details += f"; {count} of {total} rows unexpected"
        values = res.get("partial_unexpected_list") or []
        if values and spec.kwargs.get("column") == spec.column and spec.expectation in _SHOWS_VALUES:
            details += ", e.g. " + ", ".join(_fmt(v) for v in values[:_SAMPLE])
    return {"wave": wave, "instrument": instrument, "expectation": spec.name, "column": column,
            "severity": spec.severity, "success": success,
            "unexpected_count": pd.NA if count is None else int(count), "details": details}


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def validate_frame(frame: pd.DataFrame, book: Codebook, config: Config, wave: str | None = None,
                   session: _Session | None = None) -> pd.DataFrame:
    """The validation table (VALIDATION_COLUMNS) of one clean (wave, instrument) table."""
    if wave is None:
        waves = frame["wave"].dropna().unique() if "wave" in frame else []
        wave = str(waves[0]) if len(waves) == 1 else ""
    table = (session or _Session()).validate(frame, book, config, wave)
    table["unexpected_count"] = table["unexpected_count"].astype("Int64")
    return table


def run_validation(frames: dict[tuple[str, str], pd.DataFrame], books: dict[str, Codebook], config: Config,
                   docs_dir: Path) -> pd.DataFrame:
    """Validate every (wave, instrument) table, build the Data Docs into `docs_dir`, return the combined table."""
    session = _Session()
    order = {w.id: i for i, w in enumerate(config.waves)}
    tables = [validate_frame(frames[key], books[key[1]], config, key[0], session)
              for key in sorted(frames, key=lambda k: (order.get(k[0], len(order)), k[0], k[1]))]
    build_data_docs(session.results, docs_dir)
    if not tables:
        return pd.DataFrame(columns=VALIDATION_COLUMNS)
    return pd.concat(tables, ignore_index=True)


def build_data_docs(results: Iterable[Any], out_dir: Path) -> Path:
    """Render GX Data Docs for validation results into `out_dir` (index.html), readable offline."""
    gx = _gx()
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier, ValidationResultIdentifier)
    out_dir = Path(out_dir)
    for name in ("index.html", "validations", "expectations", "static"):
        target = out_dir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="ephemeral")
    context.add_data_docs_site(site_name="validation", site_config={
        "class_name": "SiteBuilder", "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
    entries, suites = [], {}
    for result in results:
        run = result.meta["run_id"]
        key = ValidationResultIdentifier(ExpectationSuiteIdentifier(result.suite_name), run,
                                         f"{run.run_name}-{result.suite_name}")
        context.validation_results_store.set(key, result)
        suites.setdefault(result.suite_name, [r.expectation_config for r in result.results])
        entries.append((run.run_name, result.suite_name, bool(result.success), key))
    for name, configs in suites.items():
        suite = gx.ExpectationSuite(name=name)
        for cfg in sorted(configs, key=lambda c: c.meta["order"]):
            suite.add_expectation_configuration(cfg)
        context.expectations_store.add(ExpectationSuiteIdentifier(name), suite)
    context.build_data_docs(site_names=["validation"])
    _make_offline(out_dir, entries)
    return out_dir / "index.html"


_REMOTE = [re.compile(p, re.S | re.I) for p in (
    r"<script\b[^>]*>.*?</script>", r"<link\b[^>]*href=\"https?://[^>]*>", r"<img\b[^>]*src=\"https?://[^>]*>",
    r"<button\b[^>]*clearTableFilters[^>]*>.*?</button>")]
_JS_TABLE = r"<table\s+id=\"[^\"]*\"\s+class=\"[^\"]*{kind}[^\"]*\"[^>]*data-toggle=\"table\"[^>]*>\s*</table>"
_STYLE = ("<style>table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
          "vertical-align:top}.ge-failed-icon:after{content:'✘'}.fa-check-circle:after{content:'✔'}</style>")


def _make_offline(out_dir: Path, entries: list) -> None:
    """GX pages load Bootstrap/jQuery/vega from CDNs and fill the index tables with JavaScript. Drop every
    script and remote asset (the pages' content is rendered HTML) and write the index tables statically."""
    for page in out_dir.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        for pattern in _REMOTE:
            text = pattern.sub("", text)
        text = re.sub(r"url\('https?://[^']*'\)", "none", text).replace("</head>", _STYLE + "</head>", 1)
        if page == out_dir / "index.html":
            rows = "".join(f"<tr><td>{'✔ passed' if ok else '✘ failed'}</td><td>{html.escape(w)}</td>"
                           f"<td>{html.escape(i)}</td><td><a href=\"{_page_path(key)}\">{html.escape(w)} / "
                           f"{html.escape(i)}</a></td></tr>" for w, i, ok, key in entries)
            table = ("<table><thead><tr><th>Status</th><th>Wave</th><th>Instrument</th><th>Validation result</th>"
                     f"</tr></thead><tbody>{rows}</tbody></table>")
            text = re.sub(_JS_TABLE.format(kind="validation-results"), lambda m: table, text)
            suites = "".join(f"<li><a href=\"expectations/{html.escape(name)}.html\">{html.escape(name)}</a></li>"
                             for name in sorted({i for _, i, _, _ in entries}))
            text = re.sub(_JS_TABLE.format(kind="expectation_suites"), lambda m: f"<ul>{suites}</ul>", text)
        page.write_text(text, encoding="utf-8")


def _page_path(key) -> str:
    return "validations/" + "/".join(html.escape(str(p)) for p in key.to_tuple()) + ".html"


def raise_on_critical(table: pd.DataFrame, docs: str = "reports/<quarter>/validation/index.html") -> None:
    """Raise ValidationFailed (exit 1) naming every failed critical expectation."""
    failed = table[(table["severity"] == "critical") & ~table["success"].astype(bool)]
    if failed.empty:
        return
    names = [f"{r.wave}/{r.instrument} {r.expectation} on {r.column or 'table'}" for r in failed.itertuples()]
    more = f"; … and {len(names) - 10} more" if len(names) > 10 else ""
    raise ValidationFailed(None, f"{len(names)} critical expectation(s) failed: {'; '.join(names[:10])}{more}",
                           f"see {docs} for the failing values; fix the cleaning rule or the input and run again")
