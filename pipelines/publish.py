"""Writing a run's results: data_clean/<wave>/ and reports/<quarter>/, each swapped in whole.

Everything published is deterministic for the same inputs (sorted rows, fixed column order, no clock
time); run times and versions go to manifest.json, which is the one file meant to differ between runs.
"""
from __future__ import annotations

import platform
import shutil
from pathlib import Path
from typing import Callable

import pandas as pd

from pipelines import __version__
from pipelines.io import staged_directory, write_csv, write_json

TABLE_FILES = ["estimates", "outcomes", "needs_priority", "reliability", "funnel", "composition", "weights",
               "services", "validation"]
LONGITUDINAL_FILES = ["attrition", "reliable_change", "trends"]


def _versions(state) -> dict:
    import numpy
    import pyarrow

    return {"tongxing": __version__, "python": platform.python_version(), "pandas": pd.__version__,
            "numpy": numpy.__version__, "pyarrow": pyarrow.__version__,
            "questionnaires": {k: b.version for k, b in sorted(state.books.items())}}


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The rows of every frame (same columns), typed by the frames that have rows: an empty log (a table
    nothing was imputed for) takes no part, as pandas' concatenation no longer ignores empty frames when
    it chooses the result's column types (a FutureWarning); all empty gives the empty table as it is."""
    return pd.concat([f for f in frames if len(f)] or frames, ignore_index=True)


def write_clean(state, validation: pd.DataFrame) -> list[Path]:
    from pipelines.dictionary import data_dictionary

    written = []
    dictionary = data_dictionary({k: t.frame for k, t in state.tables.items()}, state.books, state.config)
    write_csv(dictionary, state.root / "data_clean" / "data_dictionary.csv")
    for wave in state.waves:
        tables = {inst: t for (w, inst), t in state.tables.items() if w == wave.id}
        if not tables:
            continue
        target = state.root / "data_clean" / wave.id
        with staged_directory(target) as stage:
            logs, exclusions, manifest_tables = [], [], {}
            for instrument, table in sorted(tables.items()):
                for suffix, data in table.parquet.items():  # (encoded with the table: run.compute_table)
                    (stage / f"{instrument}{suffix}").write_bytes(data)
                write_json(table.weighted.design, stage / f"{instrument}.design.json")
                logs.append(_concat([table.clean.log, table.weighted.log]).assign(instrument=instrument))
                exclusions.append(table.clean.exclusions.assign(instrument=instrument))
                manifest_tables[instrument] = {
                    "inputs": table.files,
                    "rows": {"read": table.clean.counts["read"], "excluded": table.clean.counts["excluded"],
                             "kept": table.clean.counts["kept"]},
                    "funnel": table.clean.funnel[["step", "rule", "rows"]].to_dict("records"),
                    "weighting": table.weighted.diagnostics,
                    "weighting_warnings": table.weighted.warnings,
                    "seconds": {k: round(v, 3) for k, v in table.seconds.items()},
                }
            log = _concat(logs)[["instrument", "response_id", "column", "old", "new", "rule"]]
            write_csv(log, stage / "cleaning_log.csv")
            excl = _concat(exclusions)
            write_csv(excl[["source_file", "source_row", "instrument", "response_id", "rule", "reason"]],
                      stage / "exclusions.csv")
            val = validation[validation["wave"] == wave.id] if len(validation) else validation
            write_json({"wave": wave.id, "tables": manifest_tables, "versions": _versions(state),
                        "validation": {"expectations": int(len(val)),
                                       "failed": int((~val["success"].astype(bool)).sum()) if len(val) else 0}},
                       stage / "manifest.json")
        written.append(target)
    return written


def publish(state, analysis, validation: pd.DataFrame, docs_stage: Path | Callable[[], Path], langs,
            share: Callable | None = None) -> Path:
    """`share` may make part of the report elsewhere (see `report.builder.publish_quarter`); `data_clean/` is
    written with this process's own part, so the helper can start on its part as early as it is free."""
    from pipelines.report.builder import publish_quarter, quarter_entry, write_index
    from pipelines.report.longitudinal import LongitudinalContext, write_tables

    target = state.root / "reports" / state.quarter
    tables = {name: getattr(analysis, name) for name in TABLE_FILES if name != "validation"}
    # the longitudinal tables (attrition, reliable change, trend models) ride in a LongitudinalContext so
    # the report shows them; they are written beside the others as tables/<name>.csv
    longitudinal = {name: getattr(analysis, name, None) for name in LONGITUDINAL_FILES}
    context = LongitudinalContext(
        config=state.config, books=state.books, quarter=state.quarter, waves=[w.id for w in state.waves],
        free_text=analysis.free_text, versions={k: b.version for k, b in state.books.items()},
        validation=validation, **tables, **longitudinal)
    with staged_directory(target) as stage:
        publish_quarter(stage, context, share, then=lambda: write_clean(state, validation))
        write_tables(stage / "tables", context)
        shutil.copy2(state.root / "data_clean" / "data_dictionary.csv", stage / "tables" / "data_dictionary.csv")
        docs = docs_stage() if callable(docs_stage) else docs_stage  # (built beside the report: wait now)
        if docs.exists():
            shutil.copytree(docs, stage / "validation", dirs_exist_ok=True)
        else:
            (stage / "validation").mkdir(exist_ok=True)
    write_index(state.root / "reports", [quarter_entry(context)])
    return target
