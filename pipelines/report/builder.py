"""Render the funders' report (one self-contained HTML file per language), publish a quarter, and index them.

The HTML embeds plotly.js once and nothing else from outside: no CDN, no web font, no network address.
plotly.js carries URL strings of its own (SVG namespace identifiers, map-tile servers for map traces this
report never draws, licence comments); `plotly_js()` writes their `://` as `:\\/\\/`, which is the same
string to JavaScript, so the file text holds no "http://" or "https://" at all. A Content-Security-Policy
meta tag additionally forbids every fetch. The same context always renders to the same bytes.
"""
from __future__ import annotations

import copy
import datetime as dt
import re
from functools import cache
from pathlib import Path
from typing import Any, Callable

import jinja2
from markupsafe import Markup, escape

from pipelines.report import results, sections
from pipelines.report.context import TABLES, ReportContext, prepare
from pipelines.report.document import Doc
from pipelines.report.tables import csv_bytes, workbook_bytes, write_atomic
from pipelines.report.text import LANGS, Strings, quarter_dates

TEMPLATES = Path(__file__).with_name("templates")
REPORT_FILES = {"zh": "report.html", "en": "report.en.html"}
QUARTER_DIR = re.compile(r"^\d{4}Q[1-4]$")


SCHEME = re.compile(r"(?i)(https?|wss?|ftp)")
SCHEME_AT_END = re.compile(r"(?i)(https?|wss?|ftp)\Z")
TRAILING_WORD = re.compile(r"\w*\Z")


@cache
def plotly_js() -> str:
    """plotly.js with every `scheme://` in its strings and comments written `scheme:\\/\\/` (same value)."""
    from plotly.offline import get_plotlyjs   # (plotly itself is not needed to render a report: see charts.py)
    js = network_free(get_plotlyjs())
    if "</script" in js.lower():
        raise RuntimeError("plotly.js could not be made network-free for inlining")
    return js


def network_free(js: str) -> str:
    """`re.sub(r"(?i)\\b(https?|wss?|ftp)://", r"\\1:\\/\\/", js)`, raising if any `scheme://` is left.

    Only the few `://` of the 4.8 MB bundle are looked at, instead of regex scans of all of it: a `://`
    is rewritten when the whole word before it is a scheme (the regex's \\b), and one left as it is must
    not follow a scheme (as in `xhttp://`)."""
    pieces = js.split("://")
    out = []
    for before in pieces[:-1]:
        word = TRAILING_WORD.search(before[-16:]).group()   # (a word of 16 characters or more is no scheme)
        if SCHEME.fullmatch(word):
            out += [before, ":\\/\\/"]
        elif SCHEME_AT_END.search(before[-5:]):
            raise RuntimeError("plotly.js could not be made network-free for inlining")
        else:
            out += [before, "://"]
    out.append(pieces[-1])
    return "".join(out)


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.globals["table_html"] = table_html
    return env


def table_html(table, sup_text: str) -> Markup:
    """A data table's HTML (blocks.j2's `data_table`), cells escaped as the template escapes them. Made
    here rather than by a template loop: a report's tables have a few thousand cells, and the template's
    per-cell tests and lookups were about a sixth of rendering it."""
    numeric = list(table.numeric)
    out = ['<div class="table-wrap">\n<table>\n']
    if table.caption:
        out.append(f"<caption>{escape(table.caption)}</caption>")
    out.append("<thead><tr>" + "".join(f'<th scope="col">{escape(c)}</th>' for c in table.columns)
               + "</tr></thead>\n<tbody>\n")
    for row in table.rows:
        cells = []
        for i, cell in enumerate(row):
            if cell == sup_text:
                kind = ' class="sup"'
            elif i < len(numeric) and numeric[i]:
                kind = ' class="num"'
            elif len(cell) <= 6:
                kind = ' class="nw"'
            else:
                kind = ""
            cells.append(f"<td{kind}>{escape(cell)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>\n")
    out.append("</tbody>\n</table>\n</div>\n")
    return Markup("".join(out))


def _lines(doc: Doc) -> list[dict]:
    blocks = [doc.para(doc.T("lines.intro"))]
    for i, line in enumerate(doc.ctx.config.service_lines, start=1):
        blocks.append(doc.sub(f"3.{i} {doc.line(line.id)}", f"line-{line.id}"))
        blocks += sections.service_line(doc, line)
    return blocks


def _sections(doc: Doc) -> list[dict]:
    """The numbered sections in reading order (charts are numbered as they are built)."""
    parts = [("background", "background.heading", sections.background), ("lines", "lines.heading", _lines),
             ("outputs", "outputs.heading", results.outputs), ("outcomes", "outcomes.heading", results.outcomes),
             ("satisfaction", "satisfaction.heading", results.satisfaction),
             ("methods", "methods.heading", results.methods), ("appendix", "appendix.heading", results.appendix)]
    return [{"id": sid, "number": n, "title": doc.T(title), "blocks": build(doc)}
            for n, (sid, title, build) in enumerate(parts, start=2)]


def render(ctx: ReportContext, tables: dict, lang: str) -> str:
    doc = Doc(ctx, tables, lang)
    T = doc.T
    summary = sections.summary(doc)
    body = _sections(doc)
    p = ctx.config.project
    return _env().get_template("report.html.j2").render(
        T=T, lang=lang, title=p.get(f"name_{lang}") or p.get("name_zh", ""),
        kind=T("meta.report_kind"), community=p.get(f"community_{lang}") or p.get("community_zh", ""),
        quarter_label=doc.wave(doc.quarter), summary=summary, sections=body,
        sup_text=doc.sup, min_cell=doc.min_cell, plotly_js=plotly_js(), n_charts=doc.n_charts,
        other_lang_file=T("meta.other_file"), other_lang_label=T("meta.other_lang"))


def build_report(context: ReportContext, lang: str) -> str:
    """The report for one quarter in one language ("zh" or "en"), as HTML text."""
    if lang not in LANGS:
        raise ValueError(f"language {lang!r}: use one of {', '.join(LANGS)}")
    return render(context, prepare(context), lang)


def publish_quarter(out_dir: Path, context: ReportContext, share: Callable | None = None,
                    then: Callable[[], Any] | None = None) -> list[Path]:
    """Write report.html, report.en.html, tables/*.csv and tables/appendix.xlsx under `out_dir`.

    Each file is written beside its target and renamed over it. `validation/` (the Data Docs) is left to
    the validate stage. `share` (the run's `pipelines.worker.Helper.share`) may make the other parts — the
    workbook, the reports in the other languages and the CSVs (`other_part`) — in the run's helper process,
    which takes them as soon as it is free, while this process writes the first report and `then()` (other
    work of the caller's), and then makes whatever part the helper has not taken. By default all is done here.
    """
    out_dir = Path(out_dir)
    tables = prepare(context)
    from pipelines.report import longitudinal
    if longitudinal.has_tables(context):   # prepared once, for both reports and the workbook
        tables = {**tables, **longitudinal.prepare(context)}
    first, *rest = LANGS
    written: list[Path] = []

    def own() -> None:
        written.append(write_atomic(out_dir / REPORT_FILES[first], report_bytes(context, tables, first)))
        if then is not None:
            then()

    parts = [APPENDIX, *rest, *CSV_PARTS]  # (the largest first)
    if share is None:
        own()
        made = [other_part(part, context, tables) for part in parts]
    else:
        made = share(parts, lambda part: other_part(part, context, tables), other_part, _handed_over(context),
                     tables, first=own)
    made = dict(zip(parts, made))
    written += [write_atomic(out_dir / REPORT_FILES[lang], made[lang]) for lang in rest]
    csvs: dict[str, list[bytes]] = {}
    for part in CSV_PARTS:   # (the pieces of a table in their order)
        for name, data in made[part].items():
            csvs.setdefault(name, []).append(data)
    written += [write_atomic(out_dir / "tables" / f"{name}.csv", b"".join(data)) for name, data in csvs.items()]
    written.append(write_atomic(out_dir / "tables" / "appendix.xlsx", made[APPENDIX]))
    return written


APPENDIX = "appendix"
# tables/*.csv in three parts of publishing: estimates.csv (tens of thousands of rows) is about as much work as
# a report, so it is made in two pieces of rows (`csv_bytes`), one of which is often the run's last part: the
# other process then waits half as long. The other tables together are less work.
ESTIMATE_PIECES = 2
CSV_PARTS = (*((("estimates", i, ESTIMATE_PIECES),) for i in range(ESTIMATE_PIECES)),
             tuple((name, 0, 1) for name in TABLES if name != "estimates"))


def _handed_over(context: ReportContext) -> ReportContext:
    """The context as `other_part` elsewhere needs it: without its raw estimates, which it reads only as the
    prepared `tables["estimates"]` — half of what would be pickled across (~9 MB for the demo)."""
    slim = copy.copy(context)
    slim.estimates = context.estimates.iloc[:0]
    return slim


def report_bytes(context: ReportContext, tables: dict, lang: str) -> bytes:
    return render(context, tables, lang).encode("utf-8")


def other_part(part: str | tuple[tuple[str, int, int], ...], context: ReportContext,
               tables: dict) -> bytes | dict[str, bytes]:
    """The appendix workbook (`APPENDIX`), the report in a language other than the first, or a part of
    `CSV_PARTS` ((table name, piece, pieces) each: {table name: the bytes of its CSV's piece}): the parts of
    publishing the run may leave to its helper process (`publish_quarter`)."""
    if isinstance(part, tuple):
        return {name: csv_bytes(name, tables[name], (i, k)) for name, i, k in part}
    if part != APPENDIX:
        return report_bytes(context, tables, part)
    _, end = quarter_dates(context.config, context.quarter)
    created = dt.date.fromisoformat(end) if end else None
    from pipelines.report import longitudinal
    extra = longitudinal.prepared(context, tables) if longitudinal.has_tables(context) else None
    return workbook_bytes(tables, context.quarter, created, context.min_cell, extra)


def quarter_entry(context: ReportContext) -> dict:
    """What reports/index.html says about a quarter (pass a list of these to `write_index`)."""
    start, end = quarter_dates(context.config, context.quarter)
    try:
        w = context.config.wave(context.quarter)
        zh, en = w.label_zh, w.label_en
    except Exception:  # noqa: BLE001 - a quarter that is not a configured wave keeps its id
        zh = en = context.quarter
    p = context.config.project
    return {"quarter": context.quarter, "label_zh": zh, "label_en": en, "start": start, "end": end,
            "project_zh": p.get("name_zh", ""), "project_en": p.get("name_en", "")}


def write_index(reports_dir: Path, quarters: list[dict]) -> Path:
    """reports/index.html: every published quarter (those given, plus every `YYYYQn/` folder holding a
    report), newest first, with links to both languages and the tables."""
    reports_dir = Path(reports_dir)
    entries = {str(q["quarter"]): dict(q) for q in quarters}
    if reports_dir.is_dir():
        for d in reports_dir.iterdir():
            if d.is_dir() and QUARTER_DIR.match(d.name) and (d / REPORT_FILES["zh"]).exists():
                entries.setdefault(d.name, {"quarter": d.name})
    rows = []
    for q in sorted(entries, reverse=True):
        e = entries[q]
        rows.append({"quarter": q, "label_zh": e.get("label_zh") or q, "label_en": e.get("label_en") or q,
                     "period": f"{e['start']} – {e['end']}" if e.get("start") and e.get("end") else "",
                     "zh": f"{q}/{REPORT_FILES['zh']}", "en": f"{q}/{REPORT_FILES['en']}",
                     "xlsx": f"{q}/tables/appendix.xlsx", "tables": f"{q}/tables/"})
    named = [entries[q] for q in sorted(entries, reverse=True) if entries[q].get("project_zh")]
    project = {"zh": named[0]["project_zh"], "en": named[0].get("project_en", "")} if named else {"zh": "", "en": ""}
    html = _env().get_template("index.html.j2").render(zh=Strings("zh"), en=Strings("en"), rows=rows,
                                                       project=project)
    return write_atomic(reports_dir / "index.html", html.encode("utf-8"))
