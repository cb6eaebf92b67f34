"""`tongxing run`: every stage for one quarter, over every wave up to it, published atomically.

Nothing is written until every stage has succeeded: a critical validation failure (exit 1) or bad input
(exit 2) leaves `data_clean/` and `reports/` exactly as the last good run left them.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from pipelines.cache import Cache, code_version, combine, file_digest, folder_key
from pipelines.codebook import Codebook, load_codebooks
from pipelines.collector import fewer_collections
from pipelines.config import Config, Wave, load_config
from pipelines.decisions import load_decisions
from pipelines.errors import InputError, TongxingError
from pipelines.io import parquet_bytes, remove_stale_stages, root_lock, sha256
from pipelines.privacy import linkage_key
from pipelines.progress import stage

if TYPE_CHECKING:  # (imported where used: scipy and statsmodels cost seconds a no-change rerun need not pay)
    from pipelines.analyze import TableAnalysis
    from pipelines.clean import CleanResult
    from pipelines.weights import WeightResult

SERVICES_FOLDER = "services"


@dataclass
class TableResult:
    wave: str
    instrument: str
    clean: CleanResult
    weighted: WeightResult
    files: list[dict]
    analysis: TableAnalysis
    seconds: dict[str, float] = field(default_factory=dict)
    parquet: dict[str, bytes] = field(default_factory=dict)  # data_clean/<wave>/<instrument><suffix> → bytes

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
    table_keys: dict[tuple[str, str], str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    cache: Cache | None = None
    reused: int = 0
    unchanged: bool = False


def quarter_of(wave: Wave) -> str:
    if wave.kind == "quarterly":
        return wave.id
    return f"{wave.end.year}Q{(wave.end.month - 1) // 3 + 1}"


def waves_with_data(root: Path, config: Config) -> list[Wave]:
    raw = root / "data_raw"
    declared = {w.id for w in config.waves}
    if raw.is_dir():
        for folder in sorted(p for p in raw.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if folder.name not in declared:
                raise InputError(folder, f"'{folder.name}' is not one of the declared waves "
                                 f"({', '.join(sorted(declared))})",
                                 "declare the wave in config/project.toml or rename the folder to a wave id")
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


def _shared_key(state: RunState) -> str:
    """What every table depends on besides its own raw files and questionnaire."""
    decisions = state.root / "config" / "decisions.csv"
    key = linkage_key(state.config)
    return combine(code_version(), file_digest(state.root / "config" / "project.toml"),
                   file_digest(decisions) if decisions.exists() else "",
                   combine(key.decode("utf-8", "replace")))


def table_key(state: RunState, shared: str, wave: Wave, instrument: str, folder: Path) -> str:
    return combine(shared, wave.id, instrument, file_digest(state.books[instrument].path), folder_key(folder))


def compute_table(root: Path, config: Config, books: dict[str, Codebook], key: bytes, decisions: pd.DataFrame,
                  job: tuple) -> TableResult:
    """Ingest, clean, weight and analyse one (wave, instrument) table (in this process or the run's helper):
    the per-table estimates run here, spread over both processes, not in the analysis stage."""
    return compute_tables(root, config, books, key, decisions, (job,))[0]


def compute_tables(root: Path, config: Config, books: dict[str, Codebook], key: bytes, decisions: pd.DataFrame,
                   jobs: tuple) -> list[TableResult]:
    """`compute_table` for several waves of one instrument: each ingested, weighted and analysed on its own,
    cleaned together (`clean.clean_waves`: most of cleaning's cost is per column, so stacked waves share it)."""
    from pipelines.analyze import analyze_table
    from pipelines.clean import clean_waves
    from pipelines.ingest import ingest_folder
    from pipelines.weights import weight_table

    book = books[jobs[0][1]]
    assert all(job[1] == book.instrument for job in jobs), "tables cleaned together share their instrument"
    seconds: list[dict[str, float]] = []
    ingested = []
    for job in jobs:  # (a job: wave, instrument, folder, and for the caller the cache key)
        t0 = time.perf_counter()
        ingested.append(ingest_folder(Path(job[2]), book, root))
        seconds.append({"ingest": time.perf_counter() - t0})
    t0 = time.perf_counter()
    cleaned = clean_waves([(job[0], one.frame, one.missing) for job, one in zip(jobs, ingested)], book, config,
                          key, decisions)
    shared = time.perf_counter() - t0
    rows = [len(one.frame) for one in ingested]
    for row_count, own in zip(rows, seconds):  # (the stacked cleaning's seconds, shared out by rows read)
        own["clean"] = shared * (row_count / sum(rows) if sum(rows) else 1 / len(jobs))
    results = []
    for job, one, clean, own in zip(jobs, ingested, cleaned, seconds):
        t0 = time.perf_counter()
        weighted = weight_table(clean.frame, book, config)
        own["weight"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        analysis = analyze_table(weighted.frame, weighted.design, book, config, job[0])
        own["estimate"] = time.perf_counter() - t0
        files = [_file_entry(root, info) for info in one.files]
        # the data_clean/ files are encoded here, in whichever process computed the table (publishing then
        # only writes bytes): the tables are shared by both processes of a run, publishing is not
        parquet = {".parquet": parquet_bytes(weighted.frame), ".missing.parquet": parquet_bytes(clean.missing)}
        results.append(TableResult(job[0], book.instrument, clean, weighted, files, analysis, own, parquet))
    return results


def compute_keys(state: RunState) -> list[tuple[str, str, Path]]:
    """Every table of the run with its input key (hashing only: nothing is read or computed yet)."""
    shared = _shared_key(state)
    tables = []
    for wave in state.waves:
        for instrument, folder in instrument_folders(state.root, wave, state.books):
            state.table_keys[(wave.id, instrument)] = table_key(state, shared, wave, instrument, folder)
            tables.append((wave.id, instrument, folder))
    return tables


def _folder_bytes(folder: str) -> int:
    """The size of a table's raw files: its share of the run's work, near enough to schedule by."""
    return sum(entry.stat().st_size for entry in os.scandir(folder) if entry.is_file())


# At most this many waves of an instrument are cleaned together (`compute_tables`): enough to share most of
# cleaning's per-column cost, few enough that both processes of a run still get several jobs each.
TABLES_CLEANED_TOGETHER = 3


def _chunks(jobs: list[tuple], size: int) -> list[tuple]:
    """The jobs grouped by instrument, in runs of at most `size` (each group's waves in their order), balanced:
    six waves make two groups of three, four make two of two."""
    by_instrument: dict[str, list[tuple]] = {}
    for job in jobs:
        by_instrument.setdefault(job[1], []).append(job)
    chunks = []
    for group in by_instrument.values():
        count = -(-len(group) // size)
        edges = [round(i * len(group) / count) for i in range(count + 1)]
        chunks.extend(tuple(group[a:b]) for a, b in zip(edges[:-1], edges[1:]))
    return chunks


# the smallest jobs, together this share of the raw bytes, are computed table by table (`_largest_first`)
LAST_SHARE = 0.2


def _largest_first(chunks: list[tuple]) -> list[tuple]:
    """The chunks in the order the two processes take them: largest first (by raw bytes), and the smallest,
    together `LAST_SHARE` of the bytes, split into single tables. The stage ends when the process that took
    the last job finishes it, so the last jobs are small: then neither process waits long for the other."""
    job_bytes = {job: _folder_bytes(job[2]) for chunk in chunks for job in chunk}
    sizes = {chunk: sum(job_bytes[job] for job in chunk) for chunk in chunks}
    ordered = sorted(chunks, key=lambda chunk: -sizes[chunk])
    tail, total = 0, sum(sizes.values())
    while len(ordered) > 1 and tail + sizes[ordered[-1]] <= LAST_SHARE * total and len(ordered[-1]) > 1:
        tail += sizes[ordered[-1]]
        ordered.pop()
    last = sorted(((job,) for chunk in chunks if chunk not in ordered for job in chunk),
                  key=lambda one: -job_bytes[one[0]])
    return ordered + last


def process_tables(state: RunState, progress=None, helper=None) -> None:
    """Ingest, clean, weight and analyse every (wave, instrument) of the run, reusing unchanged tables' results;
    shared with the run's helper process (`pipelines.worker`) when there is one."""
    key, decisions = (helper.key, helper.decisions) if helper is not None else \
        (linkage_key(state.config), load_decisions(state.root))
    jobs = []
    for wave_id, instrument, folder in compute_keys(state):
        tkey = state.table_keys[(wave_id, instrument)]
        cached = state.cache.get("table", tkey) if state.cache else None
        if cached is not None:
            state.tables[(wave_id, instrument)] = cached
            state.reused += 1
        else:
            jobs.append((wave_id, instrument, str(folder), tkey if state.cache and state.cache.enabled else None))
    stage(progress, "读取、清理、加权 ingest, clean, weight", len(jobs))

    def compute(chunk):
        # each process stores its own tables in the cache as it computes them (the helper: `worker._table`),
        # so this is shared too, not left to the end of the stage
        results = compute_tables(state.root, state.config, state.books, key, decisions, chunk)
        if helper is not None:  # the helper validates them: sent now, while it is still busy with tables
            helper.keep_frames({(job[0], job[1]): result.frame for job, result in zip(chunk, results)})
        for job, result in zip(chunk, results):
            if job[3] is not None:
                state.cache.put("table", job[3], result)
        return results

    chunks = _chunks(jobs, TABLES_CLEANED_TOGETHER)
    if helper is not None and jobs:
        helper.warm_up()
        if state.tables:  # (reused tables: the helper validates them too)
            helper.keep_frames({k: table.frame for k, table in state.tables.items()})
    if helper is not None and len(chunks) > 1:
        chunks = _largest_first(chunks)
        validation = {i: ([k for k in state.table_keys if k[1] == i], key) for i, key in validation_keys(state).items()}
        computed = helper.map_tables(chunks, compute, validation, bool(state.cache and state.cache.enabled))
    else:
        computed = [compute(chunk) for chunk in chunks]
    done = {(job[0], job[1]): result for chunk, results in zip(chunks, computed) for job, result in zip(chunk, results)}
    for wave_id, instrument, *_ in jobs:  # (listed in wave order)
        result = state.tables[(wave_id, instrument)] = done[(wave_id, instrument)]
        if progress:
            counts = result.clean.counts
            progress(f"{wave_id}/{instrument}: {counts['read']} read, {counts['kept']} kept")
    order = {w.id: i for i, w in enumerate(state.config.waves)}
    state.tables = dict(sorted(state.tables.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])))
    for (wave_id, instrument), table in state.tables.items():
        for message in table.weighted.warnings:
            state.warnings.append(f"{wave_id}/{instrument}: {message}")


def validation_keys(state: RunState) -> dict[str, str]:
    """Each instrument's validation cache key: its tables' input keys (validation runs per instrument)."""
    return {i: combine(*[k for (w, j), k in sorted(state.table_keys.items()) if j == i])
            for i in sorted({i for _, i in state.table_keys})}


def publication_key(state: RunState, langs) -> str:
    services = [folder_key(state.root / "data_raw" / w.id / SERVICES_FOLDER) for w in state.waves
                if (state.root / "data_raw" / w.id / SERVICES_FOLDER).is_dir()]
    return combine(state.quarter, ",".join(langs), *[f"{k}={v}" for k, v in sorted(state.table_keys.items())],
                   *services, _shared_key(state))


def _published_record(root: Path) -> Path:
    return root / ".tongxing" / "published.json"


def already_published(state: RunState, key: str) -> bool:
    import json

    record = _published_record(state.root)
    if not record.exists():
        return False
    try:
        done = json.loads(record.read_text(encoding="utf-8"))
    except ValueError:
        return False
    report = state.root / "reports" / state.quarter / "report.html"
    clean = all((state.root / "data_clean" / w.id / "manifest.json").exists() for w in state.waves)
    return done.get(state.quarter) == key and report.exists() and clean


def record_published(state: RunState, key: str) -> None:
    import json

    record = _published_record(state.root)
    done = {}
    if record.exists():
        try:
            done = json.loads(record.read_text(encoding="utf-8"))
        except ValueError:
            done = {}
    done[state.quarter] = key
    record.write_text(json.dumps(done, indent=1, sort_keys=True), encoding="utf-8")


def _file_entry(root: Path, info: dict) -> dict:
    entry = {k: v for k, v in info.items() if k not in ("frame",)}
    path = root / entry.get("path", entry.get("source_file", ""))
    if "sha256" not in entry and path.is_file():
        entry["sha256"] = sha256(path)
    return entry


def run(root: str | Path = ".", quarter: str | None = None, langs: tuple[str, ...] = ("zh", "en"),
        progress=None, use_cache: bool = True) -> RunState:
    root = Path(root).resolve()
    started = time.perf_counter()
    with root_lock(root), fewer_collections():
        remove_stale_stages(root / "data_clean")
        remove_stale_stages(root / "reports")
        state = plan(root, quarter)
        state.cache = Cache(root, enabled=use_cache)
        compute_keys(state)
        key = publication_key(state, langs)
        if use_cache and already_published(state, key):
            state.unchanged = True
            state.reused = len(state.table_keys)
            state.timings["total"] = time.perf_counter() - started
            return state
        from pipelines.validate import raise_on_critical
        from pipelines.worker import Helper

        keys = validation_keys(state)
        docs_stage = root / ".tongxing" / "validation-docs"
        helper = Helper(root, state.config, state.books, linkage_key(state.config), load_decisions(root))
        with helper:
            t0 = time.perf_counter()
            process_tables(state, progress, helper)
            state.timings["tables"] = time.perf_counter() - t0
            helper.validate({k: t.frame for k, t in state.tables.items()}, keys, state.cache.enabled)
            from pipelines.analyze import analyze
            from pipelines.publish import publish

            t0 = time.perf_counter()
            stage(progress, "分析 analyse")
            analysis = analyze(state, helper.share)  # (the helper takes parts once it has validated)
            helper.build_docs(docs_stage)
            state.timings["analyze"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            stage(progress, "校验 validate (Great Expectations)")
            validation = helper.validation()
            state.timings["validate (waited)"] = time.perf_counter() - t0
            raise_on_critical(validation)
            t0 = time.perf_counter()
            stage(progress, "发布 publish")
            publish(state, analysis, validation, helper.docs, langs, helper.share)  # (the docs are awaited last)
            state.timings["publish"] = time.perf_counter() - t0
            state.timings.update({f"helper: {name}": seconds for name, seconds in helper.seconds.items()})
            if helper.broken:
                state.warnings.append("the helper process stopped early; this run did its work in one process "
                                      "(slower, same results)")
        record_published(state, key)
    state.timings["total"] = time.perf_counter() - started
    return state
