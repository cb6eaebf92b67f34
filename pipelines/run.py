"""`tongxing run`: every stage for one quarter, over every wave up to it, published atomically.

Nothing is written until every stage has succeeded: a critical validation failure (exit 1) or bad input
(exit 2) leaves `data_clean/` and `reports/` exactly as the last good run left them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines import __version__
from pipelines.clean import CleanResult, clean_responses
from pipelines.codebook import Codebook, load_codebooks
from pipelines.config import Config, Wave, load_config
from pipelines.decisions import load_decisions
from pipelines.errors import InputError, TongxingError
from pipelines.io import remove_stale_stages, root_lock, sha256
from pipelines.privacy import linkage_key
from pipelines.weights import WeightResult, weight_table

SERVICES_FOLDER = "services"


@dataclass
class TableResult:
    wave: str
    instrument: str
    clean: CleanResult
    weighted: WeightResult
    files: list[dict]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def frame(self) -> pd.DataFrame:
        return self.weighted.frame


@dataclass
class RunState:
    root: Path
    config: Config
    books: dict[str, Codebook]
    quarter: str
    waves: list[Wave]
    tables: dict[tuple[str, str], TableResult] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def quarter_of(wave: Wave) -> str:
    if wave.kind == "quarterly":
        return wave.id
    return f"{wave.end.year}Q{(wave.end.month - 1) // 3 + 1}"


def waves_with_data(root: Path, config: Config) -> list[Wave]:
    raw = root / "data_raw"
    return [w for w in config.waves if (raw / w.id).is_dir() and any((raw / w.id).iterdir())]


def plan(root: Path, quarter: str | None) -> RunState:
    config = load_config(root)
    books = load_codebooks(config.questionnaire_dir)
    present = waves_with_data(root, config)
    if not present:
        raise InputError(root / "data_raw", "holds no survey exports",
                         "put each download in data_raw/<wave>/<instrument>/ (see data_raw/README.md), "
                         "or run `tongxing demo .` for demo data")
    if quarter is None:
        chosen = present[-1]
    else:
        matches = [w for w in config.waves if quarter_of(w) == quarter]
        if not matches:
            raise TongxingError("config/project.toml", f"no wave belongs to quarter {quarter}",
                                "quarters with waves: " + ", ".join(quarter_of(w) for w in config.waves))
        chosen = matches[-1]
    waves = [w for w in config.waves_up_to(chosen.id) if w in present]
    return RunState(root=root, config=config, books=books, quarter=quarter_of(chosen), waves=waves)


def instrument_folders(root: Path, wave: Wave, books: dict[str, Codebook]) -> list[tuple[str, Path]]:
    folder = root / "data_raw" / wave.id
    out = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name == SERVICES_FOLDER:
            continue
        if sub.name not in books:
            raise InputError(sub, f"folder '{sub.name}' is not a questionnaire",
                             f"name instrument folders after config/questionnaires/*.xlsx: {', '.join(sorted(books))}")
        out.append((sub.name, sub))
    return out


def process_tables(state: RunState, progress=None) -> None:
    """Ingest, clean and weight every (wave, instrument) of the run."""
    from pipelines.ingest import ingest_folder

    key = linkage_key(state.config)
    decisions = load_decisions(state.root)
    for wave in state.waves:
        for instrument, folder in instrument_folders(state.root, wave, state.books):
            book = state.books[instrument]
            seconds = {}
            t0 = time.perf_counter()
            ingested = ingest_folder(folder, book, state.root)
            seconds["ingest"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            cleaned = clean_responses(ingested.frame, ingested.missing, book, state.config, wave.id, key, decisions)
            seconds["clean"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            weighted = weight_table(cleaned.frame, book, state.config)
            seconds["weight"] = time.perf_counter() - t0
            for message in weighted.warnings:
                state.warnings.append(f"{wave.id}/{instrument}: {message}")
            files = [_file_entry(state.root, info) for info in ingested.files]
            state.tables[(wave.id, instrument)] = TableResult(wave.id, instrument, cleaned, weighted, files, seconds)
            if progress:
                progress(f"{wave.id}/{instrument}: {cleaned.counts['read']} read, {cleaned.counts['kept']} kept")


def _file_entry(root: Path, info: dict) -> dict:
    entry = {k: v for k, v in info.items() if k not in ("frame",)}
    path = root / entry.get("path", entry.get("source_file", ""))
    if "sha256" not in entry and path.is_file():
        entry["sha256"] = sha256(path)
    return entry


def run(root: str | Path = ".", quarter: str | None = None, langs: tuple[str, ...] = ("zh", "en"),
        progress=None) -> RunState:
    root = Path(root).resolve()
    started = time.perf_counter()
    with root_lock(root):
        remove_stale_stages(root / "data_clean")
        remove_stale_stages(root / "reports")
        state = plan(root, quarter)
        t0 = time.perf_counter()
        process_tables(state, progress)
        state.timings["ingest_clean_weight"] = time.perf_counter() - t0
        from pipelines.analyze import analyze
        from pipelines.publish import publish
        from pipelines.validate import raise_on_critical, run_validation

        t0 = time.perf_counter()
        frames = {k: t.frame for k, t in state.tables.items()}
        docs_stage = root / ".tongxing" / "validation-docs"
        validation = run_validation(frames, state.books, state.config, docs_stage)
        state.timings["validate"] = time.perf_counter() - t0
        raise_on_critical(validation)
        t0 = time.perf_counter()
        analysis = analyze(state)
        state.timings["analyze"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        publish(state, analysis, validation, docs_stage, langs)
        state.timings["publish"] = time.perf_counter() - t0
    state.timings["total"] = time.perf_counter() - started
    return state
