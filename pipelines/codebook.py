"""The codebook: XLSForm workbooks read into one typed object every stage shares.

Ingest matches export headers to it, cleaning takes ranges and skip logic from it, validation generates
expectations from it, analysis knows each question's measurement level from it, and the report takes its
labels from it. docs/codebook.md describes the workbook format; errors name the sheet, row and column.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.errors import ConfigError
from pipelines.relevance import Relevance, RelevanceError, parse_relevance

ANSWER_TYPES = {"select_one", "select_multiple", "rank", "integer", "decimal", "text", "date"}
STRUCTURE_TYPES = {"begin_group", "end_group", "note", "begin group", "end group"}
MEASURES = {"nominal", "ordinal", "interval", "binary", ""}
ROLES = {"", "compound", "child_age", "child_birth", "respondent_age", "hukou", "respondent_role", "gender",
         "link_phone", "link_name", "link_room", "consent", "phase", "activity_id"}
LABEL_ZH = ("label::中文 (zh)", "label::zh", "label::Chinese (zh)", "label")
LABEL_EN = ("label::English (en)", "label::en")


@dataclass(frozen=True)
class Choice:
    code: int
    label_zh: str
    label_en: str
    score: float
    other: bool


@dataclass(frozen=True)
class Question:
    """One answer row of the survey sheet (a matrix row is its own Question)."""

    name: str
    type: str
    list_name: str | None
    label_zh: str
    label_en: str
    qnum: int | None
    required: bool
    relevant: Relevance | None
    min: float | None
    max: float | None
    measure: str
    indicator: str
    service_line: str
    scale: str
    subscale: str
    reverse: bool
    correct: int | None
    personal: bool
    role: str
    need: bool
    satisfaction: bool
    matrix: str | None
    choices: tuple[Choice, ...] = ()
    row: int = 0

    @property
    def codes(self) -> list[int]:
        return [c.code for c in self.choices]

    @property
    def other_choice(self) -> Choice | None:
        return next((c for c in self.choices if c.other), None)

    def choice(self, code: int) -> Choice | None:
        return next((c for c in self.choices if c.code == code), None)

    def option_column(self, code: int) -> str:
        return f"{self.name}__{code}"

    @property
    def other_column(self) -> str:
        return f"{self.name}_other"

    @property
    def correct_column(self) -> str:
        return f"{self.name}_correct"

    def clean_columns(self) -> list[str]:
        """The columns this question owns in the clean table (docs/codebook.md)."""
        if self.personal:
            return []
        if self.type in ("select_multiple", "rank"):
            cols = [self.option_column(c) for c in self.codes]
        else:
            cols = [self.name]
        if self.other_choice is not None:
            cols.append(self.other_column)
        if self.correct is not None:
            cols.append(self.correct_column)
        return cols


@dataclass(frozen=True)
class Matrix:
    name: str
    qnum: int | None
    label_zh: str
    label_en: str
    rows: tuple[str, ...]


@dataclass(frozen=True)
class Scale:
    id: str
    label_zh: str
    label_en: str
    method: str
    min_answered: float
    multiplier: float
    low_cut: float | None
    mcid: float | None
    items: tuple[str, ...]
    subscales: dict[str, tuple[str, ...]]

    @property
    def score_column(self) -> str:
        return f"{self.id}_score"

    def subscale_column(self, sub: str) -> str:
        return f"{self.id}_{sub}"


@dataclass(frozen=True)
class Codebook:
    instrument: str
    title: str
    version: str
    population: str
    min_age: int | None
    max_age: int | None
    questions: tuple[Question, ...]
    matrices: dict[str, Matrix]
    scales: dict[str, Scale]
    path: Path
    _by_name: dict[str, Question] = field(default_factory=dict, repr=False)

    def __getitem__(self, name: str) -> Question:
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def by_role(self, role: str) -> Question | None:
        return next((q for q in self.questions if q.role == role), None)

    @cached_property
    def answer_questions(self) -> tuple[Question, ...]:
        """Questions that reach the clean table (personal ones stop at ingest)."""
        return tuple(q for q in self.questions if not q.personal)

    @cached_property
    def qnums(self) -> dict[int, tuple[Question, ...]]:
        """Platform question number → the answer rows it holds (several for a matrix)."""
        out: dict[int, list[Question]] = {}
        for q in self.questions:
            if q.qnum is not None:
                out.setdefault(q.qnum, []).append(q)
        return {k: tuple(v) for k, v in sorted(out.items())}

    def clean_columns(self) -> list[str]:
        cols: list[str] = []
        for q in self.answer_questions:
            cols.extend(q.clean_columns())
        return cols

    def scale_items(self, scale_id: str) -> list[Question]:
        return [self[name] for name in self.scales[scale_id].items]


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _yes(value: str) -> bool:
    return value.strip().lower() in ("yes", "true", "1", "y", "是", "true()")


def _read_sheet(path: Path, sheet: str, required: bool = True) -> pd.DataFrame | None:
    try:
        # (pandas would read an English label "None" or "NA" as missing: only empty cells are missing)
        frame = pd.read_excel(path, sheet_name=sheet, dtype=object, engine="calamine", keep_default_na=False,
                              na_values=[""])
    except ValueError as exc:
        if "not found" in str(exc).lower() or "worksheet" in str(exc).lower():
            if required:
                raise ConfigError(path, f"has no '{sheet}' sheet",
                                  "an XLSForm workbook needs survey, choices and settings sheets") from None
            return None
        raise ConfigError(path, f"cannot be read as a workbook: {exc}", "save it again as .xlsx") from None
    except Exception as exc:  # calamine raises its own error types for broken files
        raise ConfigError(path, f"cannot be read as a workbook: {exc}", "save it again as .xlsx") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _column(frame: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in frame.columns), None)


def load_codebook(path: str | Path) -> Codebook:
    path = Path(path)
    if not path.exists():
        raise ConfigError(path, "questionnaire workbook not found",
                          "each instrument needs config/questionnaires/<instrument>.xlsx")
    survey = _read_sheet(path, "survey")
    choices = _read_sheet(path, "choices")
    settings = _read_sheet(path, "settings")
    scales = _read_sheet(path, "scales", required=False)
    lists = _parse_choices(path, choices)
    settings_row = {k: _cell(v) for k, v in settings.iloc[0].items()} if len(settings) else {}
    instrument = settings_row.get("form_id") or path.stem
    questions, matrices = _parse_survey(path, survey, lists)
    by_name = {q.name: q for q in questions}
    scale_defs = _parse_scales(path, scales, questions)

    def _int(key):
        value = settings_row.get(key, "")
        try:
            return int(float(value)) if value else None
        except ValueError:
            raise ConfigError(path, f"settings sheet: {key} should be a whole number, not {value!r}",
                              "write a number such as 8, or leave it empty") from None

    return Codebook(
        instrument=instrument, title=settings_row.get("form_title", instrument),
        version=settings_row.get("version", ""), population=settings_row.get("population", ""),
        min_age=_int("min_age"), max_age=_int("max_age"), questions=tuple(questions), matrices=matrices,
        scales=scale_defs, path=path, _by_name=by_name)


def _parse_choices(path: Path, frame: pd.DataFrame) -> dict[str, tuple[Choice, ...]]:
    for col in ("list_name", "name"):
        if col not in frame.columns:
            raise ConfigError(path, f"choices sheet has no '{col}' column", "add the XLSForm column")
    zh, en = _column(frame, LABEL_ZH), _column(frame, LABEL_EN)
    lists: dict[str, list[Choice]] = {}
    for i, row in enumerate(frame.to_dict("records")):
        list_name = _cell(row.get("list_name"))
        if not list_name:
            continue
        where = f"choices sheet row {i + 2}"
        code_text = _cell(row.get("name"))
        try:
            code = int(code_text)
        except ValueError:
            raise ConfigError(path, f"{where}: choice code {code_text!r} of list '{list_name}' is not a whole number",
                              "choice names are the platform's option numbers 1..k") from None
        existing = lists.setdefault(list_name, [])
        if code != len(existing) + 1:
            raise ConfigError(path, f"{where}: list '{list_name}' has code {code} where {len(existing) + 1} was expected",
                              "number each list's options 1..k in display order")
        score_text = _cell(row.get("score"))
        label_zh = _cell(row.get(zh)) if zh else ""
        if not label_zh:
            raise ConfigError(path, f"{where}: option {code} of list '{list_name}' has no Chinese label",
                              "write the option text exactly as the platform shows it")
        existing.append(Choice(code=code, label_zh=label_zh, label_en=(_cell(row.get(en)) if en else "") or label_zh,
                               score=float(score_text) if score_text else float(code),
                               other=_yes(_cell(row.get("other")))))
    return {k: tuple(v) for k, v in lists.items()}


def _parse_survey(path: Path, frame: pd.DataFrame, lists) -> tuple[list[Question], dict[str, Matrix]]:
    for col in ("type", "name"):
        if col not in frame.columns:
            raise ConfigError(path, f"survey sheet has no '{col}' column", "add the XLSForm column")
    zh, en = _column(frame, LABEL_ZH), _column(frame, LABEL_EN)
    if zh is None:
        raise ConfigError(path, "survey sheet has no Chinese label column", "add 'label::中文 (zh)'")
    questions: list[Question] = []
    matrices: dict[str, Matrix] = {}
    names: set[str] = set()
    open_matrix: dict | None = None
    group_depth = 0
    for i, row in enumerate(frame.to_dict("records")):
        cells = {k: _cell(v) for k, v in row.items()}
        qtype = " ".join(cells.get("type", "").split())
        if not qtype:
            continue
        where = f"survey sheet row {i + 2}"
        name = cells.get("name", "")
        base = qtype.split(" ")[0]
        qnum = _qnum(path, where, cells.get("qnum", ""))
        if base in ("begin_group", "begin"):
            group_depth += 1
            if cells.get("appearance", "") == "table-list":
                if open_matrix is not None:
                    raise ConfigError(path, f"{where}: a matrix opens inside matrix '{open_matrix['name']}'",
                                      "close the first matrix with an end_group row before opening another")
                open_matrix = {"name": name, "qnum": qnum, "zh": cells.get(zh, ""),
                               "en": cells.get(en, "") if en else "", "rows": [], "depth": group_depth}
            continue
        if base in ("end_group", "end"):
            if open_matrix is not None and open_matrix["depth"] == group_depth:
                if not open_matrix["rows"]:
                    raise ConfigError(path, f"{where}: matrix '{open_matrix['name']}' has no rows",
                                      "put its rows between begin_group and end_group, or delete the group")
                matrices[open_matrix["name"]] = Matrix(open_matrix["name"], open_matrix["qnum"], open_matrix["zh"],
                                                       open_matrix["en"] or open_matrix["zh"],
                                                       tuple(open_matrix["rows"]))
                open_matrix = None
            group_depth -= 1
            continue
        if base == "note" or base == "calculate":
            continue
        if base not in ANSWER_TYPES:
            raise ConfigError(path, f"{where}: unknown question type {qtype!r}",
                              f"use one of {', '.join(sorted(ANSWER_TYPES))}")
        if not name or not name.replace("_", "a").isalnum() or not name.isascii() or not name[0].isalpha():
            raise ConfigError(path, f"{where}: name {name!r} is not an ASCII snake_case column name",
                              "use letters, digits and _, starting with a letter, e.g. child_age")
        if name in names:
            raise ConfigError(path, f"{where}: duplicate name {name!r}", "every answer row needs its own name")
        names.add(name)
        list_name = None
        choices: tuple[Choice, ...] = ()
        if base in ("select_one", "select_multiple", "rank"):
            parts = qtype.split(" ")
            if len(parts) != 2:
                raise ConfigError(path, f"{where}: type {qtype!r} names no choice list", f"write '{base} LISTNAME'")
            list_name = parts[1]
            if list_name not in lists:
                raise ConfigError(path, f"{where}: choice list '{list_name}' of question '{name}' is not in the choices sheet",
                                  "add the list or correct its name")
            choices = lists[list_name]
        measure = cells.get("measure", "").lower()
        if measure not in MEASURES:
            raise ConfigError(path, f"{where}: measure {measure!r} of '{name}' is unknown",
                              "use nominal, ordinal, interval or binary")
        role = cells.get("role", "")
        if role not in ROLES:
            raise ConfigError(path, f"{where}: role {role!r} of '{name}' is unknown", f"use one of {', '.join(sorted(ROLES - {''}))}")
        relevant = None
        if cells.get("relevant", ""):
            try:
                relevant = parse_relevance(cells["relevant"])
            except RelevanceError as exc:
                raise ConfigError(path, f"{where}: {exc}", "see docs/codebook.md for the allowed syntax") from None
        correct = cells.get("correct", "")
        correct_code = None
        if correct:
            try:
                correct_code = int(correct)
            except ValueError:
                raise ConfigError(path, f"{where}: correct answer {correct!r} of '{name}' is not a choice code",
                                  f"write the code (name) of the correct option of list '{list_name}'") from None
            if correct_code not in [c.code for c in choices]:
                raise ConfigError(path, f"{where}: correct answer {correct_code} of '{name}' is not in list '{list_name}'",
                                  f"write the code (name) of the correct option of list '{list_name}'")
        matrix_name = open_matrix["name"] if open_matrix is not None else None
        if open_matrix is not None:
            open_matrix["rows"].append(name)
            qnum = open_matrix["qnum"]
        questions.append(Question(
            name=name, type=base, list_name=list_name, label_zh=cells.get(zh, ""),
            label_en=(cells.get(en, "") if en else "") or cells.get(zh, ""), qnum=qnum,
            required=_yes(cells.get("required", "")), relevant=relevant,
            min=_number(path, where, "min", cells.get("min", "")), max=_number(path, where, "max", cells.get("max", "")),
            measure=measure or _default_measure(base), indicator=cells.get("indicator", ""),
            service_line=cells.get("service_line", ""), scale=cells.get("scale", ""),
            subscale=cells.get("subscale", ""), reverse=_yes(cells.get("reverse", "")), correct=correct_code,
            personal=_yes(cells.get("personal", "")), role=role, need=_yes(cells.get("need", "")),
            satisfaction=_yes(cells.get("satisfaction", "")), matrix=matrix_name, choices=choices, row=i + 2))
    if open_matrix is not None:
        raise ConfigError(path, f"matrix '{open_matrix['name']}' is never closed", "add an end_group row")
    for q in questions:
        if q.relevant is not None:
            unknown = sorted(q.relevant.refs - names)
            if unknown:
                raise ConfigError(path, f"survey sheet row {q.row}: relevant of '{q.name}' refers to unknown question(s) "
                                  f"{', '.join(unknown)}", "correct the ${name} in the expression, or add the question")
    return questions, matrices


def _qnum(path: Path, where: str, text: str) -> int | None:
    if not text:
        return None
    try:
        return int(float(text))
    except ValueError:
        raise ConfigError(path, f"{where}: qnum {text!r} is not a question number",
                          "write the number the platform shows before the question, e.g. 5") from None


def _number(path: Path, where: str, key: str, text: str) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ConfigError(path, f"{where}: {key} {text!r} is not a number", "write a number or leave it empty") from None


def _default_measure(base: str) -> str:
    return {"select_one": "nominal", "select_multiple": "binary", "rank": "ordinal", "integer": "interval",
            "decimal": "interval"}.get(base, "")


def _parse_scales(path: Path, frame: pd.DataFrame | None, questions: list[Question]) -> dict[str, Scale]:
    items: dict[str, list[Question]] = {}
    for q in questions:
        if q.scale:
            items.setdefault(q.scale, []).append(q)
    rows = {}
    if frame is not None and "scale" in frame.columns:
        zh, en = _column(frame, LABEL_ZH), _column(frame, LABEL_EN)
        for i, row in enumerate(frame.to_dict("records")):
            cells = {k: _cell(v) for k, v in row.items()}
            if cells.get("scale"):
                cells["_zh"] = cells.get(zh, "") if zh else ""
                cells["_en"] = cells.get(en, "") if en else ""
                cells["_row"] = i + 2
                rows[cells["scale"]] = cells
    out = {}
    for sid, qs in items.items():
        cells = rows.get(sid)
        if cells is None:
            raise ConfigError(path, f"scale '{sid}' (survey row {qs[0].row}) is not described in the scales sheet",
                              "add a row with its method and min_answered")
        where = f"scales sheet row {cells['_row']}"
        method = cells.get("method", "sum") or "sum"
        if method not in ("sum", "mean"):
            raise ConfigError(path, f"{where}: method {method!r} of scale '{sid}'", "use sum or mean")
        min_answered = _number(path, where, "min_answered", cells.get("min_answered", "")) or 1.0
        if not 0 < min_answered <= 1:
            raise ConfigError(path, f"{where}: min_answered of scale '{sid}' must be a share in (0, 1]",
                              "write e.g. 0.8 (answers needed for a score, as a share of the items)")
        subs: dict[str, list[str]] = {}
        for q in qs:
            if q.subscale:
                subs.setdefault(q.subscale, []).append(q.name)
        out[sid] = Scale(
            id=sid, label_zh=cells["_zh"] or sid, label_en=cells["_en"] or cells["_zh"] or sid, method=method,
            min_answered=min_answered,
            multiplier=_number(path, where, "multiplier", cells.get("multiplier", "")) or 1.0,
            low_cut=_number(path, where, "low_cut", cells.get("low_cut", "")),
            mcid=_number(path, where, "mcid", cells.get("mcid", "")),
            items=tuple(q.name for q in qs), subscales={k: tuple(v) for k, v in subs.items()})
    return out


def load_codebooks(questionnaire_dir: str | Path) -> dict[str, Codebook]:
    """Every workbook in the folder, keyed by instrument id; the three main instruments must exist."""
    folder = Path(questionnaire_dir)
    books = {}
    for path in sorted(folder.glob("*.xlsx")):
        if path.name.startswith(("~$", ".")):
            continue
        book = load_codebook(path)
        books[book.instrument] = book
    for required in ("parent", "child", "community"):
        if required not in books:
            raise ConfigError(folder / f"{required}.xlsx", "questionnaire workbook not found",
                              "the parent, child and community instruments always exist")
    return books
