"""`tongxing demo DIR`: a complete project root with realistic 问卷星 downloads and the known truth.

The exports vary across waves the way real downloads do (xlsx and CSV, GBK and UTF-8 with BOM, text and
coded modes, one wave downloaded twice), so the ingest stage is exercised on every run of the demo.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook, load_codebooks
from pipelines.config import CONFIG_FILE, QUESTIONNAIRE_DIR, Config, load_config
from pipelines.demo.answers import answer_wave
from pipelines.demo.population import EFFECTS, Population, build_population, wave_ramp
from pipelines.demo.sampling import add_metadata, draw_samples, plant_messiness
from pipelines.demo.services import write_service_records
from pipelines.demo.truth import effect_truths, estimate_truths, population_clean
from pipelines.demo.wjx_export import wjx_filename, write_wjx
from pipelines.errors import TongxingError

FORM_NUMBERS = {"parent": 331954276, "child": 331954301, "community": 331954322, "activity": 331954350}
TITLES = {"parent": "家长问卷", "child": "儿童问卷", "community": "社区居民问卷", "activity": "活动前后测"}
# (text download, coded download) formats per wave position: real evaluators mix them
FORMATS = [
    (("xlsx", None), ("xlsx", None)),
    (("csv", "gb18030"), ("csv", "gb18030")),
    (("xlsx", None), ("csv", "utf-8-sig")),
    (("xlsx", None), ("xlsx", None)),
    (("csv", "utf-8-sig"), ("xlsx", None)),
    (("xlsx", None), ("xlsx", None)),
]
ACTIVITY_WAVES = {"2025Q1": 1, "2025Q2": 2, "2025Q3": 3}  # wave → activity code run in it
ACTIVITY_SIZE = 12


def bundled_config_dir() -> Path:
    """The configuration shipped with the package (wheel) or the repository's own config/ (editable)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_bundled" / "config", here.parent / "config"):
        if (candidate / "project.toml").exists():
            return candidate
    raise TongxingError(None, "the bundled configuration is missing from this installation",
                        "reinstall tongxing")


def has_exports(root: Path) -> bool:
    raw = root / "data_raw"
    return raw.exists() and any(p.is_file() and p.name != "README.md" for p in raw.rglob("*"))


def make_demo(target: str | Path, seed: int = 20240601, scale: int = 1, data_only: bool = False) -> dict:
    """Write a demo root at `target`; returns a summary (rows written per wave and instrument)."""
    root = Path(target)
    root.mkdir(parents=True, exist_ok=True)
    if data_only:
        if has_exports(root):
            return {"skipped": "data_raw/ already holds exports", "files": 0}
        if not (root / CONFIG_FILE).exists():
            _copy_config(root)
    else:
        _copy_config(root)
    config = load_config(root)
    books = load_codebooks(config.questionnaire_dir)
    ramp = wave_ramp(config)
    waves = list(config.waves)
    truth = {"seed": seed, "scale": scale, "estimates": [], "effects": [], "samples": {}, "planted": {},
             "true_effects_sd": EFFECTS}
    summary: dict[str, dict[str, int]] = {}
    households: Population | None = None
    for instrument in ("parent", "child", "community"):
        book = books[instrument]
        pop = build_population(config, book, seed, scale)
        if instrument == "parent":
            households = pop
        samples = draw_samples(pop, waves, seed, scale)
        frames = {}
        for position, wave in enumerate(waves):
            answers = answer_wave(pop, book, config, wave.id, ramp[wave.id], seed)
            frames[wave.id] = population_clean(answers, book)
            truth["estimates"].extend(estimate_truths(frames[wave.id], book, wave.id))
            sample = add_metadata(answers.iloc[samples[wave.id]], book, wave, seed)
            messy, planted = plant_messiness(sample, book, config, seed, wave.id)
            truth["planted"][f"{wave.id}/{instrument}"] = planted
            truth["samples"][f"{wave.id}/{instrument}"] = {"respondents": int(len(samples[wave.id])),
                                                           "rows_exported": int(len(messy))}
            _export(root, wave.id, book, messy, position, seed, scale)
            summary.setdefault(wave.id, {})[instrument] = len(messy)
        truth["effects"].extend(effect_truths(frames, book, config, samples))
    if "activity" in books and households is not None:
        for wave_id, rows in _activity_exports(root, config, books["activity"], households, seed, waves).items():
            summary.setdefault(wave_id, {})["activity"] = rows
    for wave in waves:
        write_service_records(root, config, wave, seed, scale)
    (root / "demo_truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1, sort_keys=True),
                                          encoding="utf-8")
    return {"root": str(root), "rows": summary}


def _copy_config(root: Path) -> None:
    source = bundled_config_dir()
    (root / "config").mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "project.toml", root / CONFIG_FILE)
    (root / QUESTIONNAIRE_DIR).mkdir(parents=True, exist_ok=True)
    for book in sorted((source / "questionnaires").glob("*.xlsx")):
        shutil.copy2(book, root / QUESTIONNAIRE_DIR / book.name)


def _export(root: Path, wave_id: str, book: Codebook, frame: pd.DataFrame, position: int, seed: int,
            scale: int = 1) -> None:
    folder = root / "data_raw" / wave_id / book.instrument
    folder.mkdir(parents=True, exist_ok=True)
    n = len(frame)
    (text_fmt, text_enc), (coded_fmt, coded_enc) = FORMATS[position % len(FORMATS)]
    if scale >= 10:
        # city-scale benchmarks: xlsx writing (~10 µs a cell) would dominate, and big downloads come as CSV anyway
        (text_fmt, text_enc), (coded_fmt, coded_enc) = ("csv", text_enc or "utf-8-sig"), ("csv", coded_enc or "utf-8-sig")
    number = FORM_NUMBERS.get(book.instrument, 331954000)
    title = TITLES.get(book.instrument, book.instrument)
    write_wjx(frame, book, folder / wjx_filename(number, "text", title, n, text_fmt), mode="text", fmt=text_fmt,
              encoding=text_enc or "utf-8-sig")
    write_wjx(frame, book, folder / wjx_filename(number, "coded", title, n, coded_fmt), mode="coded",
              fmt=coded_fmt, encoding=coded_enc or "utf-8-sig")
    if wave_id.endswith("Q2") and book.instrument == "parent":
        # the evaluator downloaded the text export again a week later: overlapping rows must not double-count
        first = frame.iloc[: int(n * 0.6)]
        write_wjx(first, book, folder / wjx_filename(number, "text", title + "(重新下载)", len(first), "csv"),
                  mode="text", fmt="csv", encoding="utf-8-sig")


def _activity_exports(root: Path, config: Config, book: Codebook, households: Population, seed: int,
                      waves) -> dict[str, int]:
    """Pre/post tests of small group activities: 12 parents each, linked by phone, strong true effect."""
    rng = np.random.default_rng([seed, 99])
    written = {}
    phase_q = book.by_role("phase")
    activity_q = next((q for q in book.questions if q.name == "activity_id"), None)
    by_id = {w.id: w for w in waves}
    for wave_id, activity_code in ACTIVITY_WAVES.items():
        if wave_id not in by_id or phase_q is None or activity_q is None:
            continue
        members = np.sort(rng.choice(len(households.units), size=ACTIVITY_SIZE, replace=False))
        group = Population("activity", households.units.iloc[members].reset_index(drop=True),
                           {k: v[members] for k, v in households.traits.items()})
        group.traits = {k: rng.normal(0, 1, ACTIVITY_SIZE) for k in ("parent_child_comm", "satisfaction")}
        parts = []
        for phase, ramp in ((1, 0.0), (2, 2.0)):  # the workshop's effect: EFFECTS × 2 (≈0.7 SD)
            answers = answer_wave(group, book, config, f"{wave_id}-{phase}", ramp, seed)
            answers[phase_q.name] = pd.array([phase] * ACTIVITY_SIZE, dtype="Int64")
            answers[activity_q.name] = pd.array([activity_code] * ACTIVITY_SIZE, dtype="Int64")
            _relevance_again(book, answers)
            parts.append(answers)
        frame = pd.concat(parts, ignore_index=True)
        frame = add_metadata(frame, book, by_id[wave_id], seed)
        frame["duration_s"] = frame["duration_s"].clip(lower=90)
        _export(root, wave_id, book, frame, 0, seed)
        written[wave_id] = len(frame)
    return written


def _relevance_again(book: Codebook, frame: pd.DataFrame) -> None:
    from pipelines.demo.answers import _apply_relevance
    _apply_relevance(book, frame)
