"""Fixed strings (strings.toml), number formatting and labels (codebook + config) for one language."""
from __future__ import annotations

import math
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from pipelines.codebook import Codebook
from pipelines.config import Config

STRINGS_FILE = Path(__file__).with_name("strings.toml")
LANGS = ("zh", "en")


@cache
def load_strings() -> dict[str, dict[str, dict[str, str]]]:
    return tomllib.loads(STRINGS_FILE.read_text(encoding="utf-8"))


class Strings:
    """`T("summary.heading")` → the text in this language; keyword arguments fill its {placeholders}."""

    def __init__(self, lang: str):
        if lang not in LANGS:
            raise ValueError(f"language {lang!r}: use one of {', '.join(LANGS)}")
        self.lang = lang
        self.table = load_strings()

    def __call__(self, key: str, **kw: Any) -> str:
        section, name = key.split(".", 1)
        return self.table[section][name][self.lang].format(**kw)

    def get(self, key: str, default: str) -> str:
        section, name = key.split(".", 1)
        entry = self.table.get(section, {}).get(name)
        return entry[self.lang] if entry else default


def number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def pct(value: Any, digits: int = 0) -> str:
    v = number(value)
    return "–" if v is None else f"{v * 100:.{digits}f}%"


def num(value: Any, digits: int | None = None) -> str:
    v = number(value)
    if v is None:
        return "–"
    if digits is None:
        digits = 0 if v.is_integer() and abs(v) >= 100 else (1 if abs(v) >= 10 else 2)
    return f"{v:,.{digits}f}"


def count(value: Any) -> str:
    v = number(value)
    return "–" if v is None else f"{int(round(v)):,}"


def value(v: Any, share: bool) -> str:
    return pct(v, 1) if share else num(v)


def interval(lo: Any, hi: Any, share: bool) -> str:
    if number(lo) is None or number(hi) is None:
        return "–"
    return f"{value(lo, share)} – {value(hi, share)}"


def short(label: str) -> str:
    """A label without a long trailing parenthesis (kept in tables and the CSVs in full)."""
    label = label.strip()
    m = re.match(r"^(.{4,}?)\s*[（(][^（()）]{12,}[)）]\s*$", label)
    return m.group(1) if m else label


def quarter_dates(config: Config, wave_id: str) -> tuple[str, str]:
    try:
        w = config.wave(wave_id)
        return w.start.isoformat(), w.end.isoformat()
    except Exception:  # noqa: BLE001 - a quarter outside the config still gets a report
        return "", ""


# ---------------------------------------------------------------- labels from the codebooks
def _pick(obj: Any, lang: str) -> str:
    return getattr(obj, f"label_{lang}") or getattr(obj, "label_zh")


def column_label(book: Codebook | None, column: str, lang: str) -> str:
    """What a clean-table column measures, in words: question, scale, subscale or option."""
    if book is None:
        return column
    if column in book:
        return _pick(book[column], lang)
    for scale in book.scales.values():
        name = _pick(scale, lang)
        if column == scale.score_column:
            return name
        if column == f"{scale.id}_low":
            return f"{short(name)}：低分段比例" if lang == "zh" else f"{short(name)}: share in the low band"
        for sub in scale.subscales:
            if column == scale.subscale_column(sub):
                return f"{short(name)}：{sub}" if lang == "zh" else f"{short(name)}: {sub}"
    for suffix in ("_correct", "_count", "_other"):
        if column.endswith(suffix) and column[: -len(suffix)] in book:
            return _pick(book[column[: -len(suffix)]], lang)
    if "__" in column:
        qname, code = column.rsplit("__", 1)
        if qname in book:
            q = book[qname]
            choice = q.choice(int(code)) if code.isdigit() else None
            return f"{_pick(q, lang)} — {_pick(choice, lang)}" if choice else _pick(q, lang)
    return column


def option_label(book: Codebook | None, column: str, lang: str) -> str:
    """The option a `<question>__<code>` column counts (just the option's own words)."""
    if book is not None and "__" in column:
        qname, code = column.rsplit("__", 1)
        if qname in book and code.isdigit():
            choice = book[qname].choice(int(code))
            if choice:
                return _pick(choice, lang)
    return column_label(book, column, lang)


def level_label(book: Codebook | None, column: str, level: str, lang: str) -> str:
    if level in ("", "nan"):
        return ""
    if book is not None and column in book and book[column].choices and level.lstrip("-").isdigit():
        choice = book[column].choice(int(level))
        if choice:
            return _pick(choice, lang)
    if level == "1" and (column.endswith(("_low", "_correct")) or "__" in column):
        return "是" if lang == "zh" else "yes"
    if level == "0" and (column.endswith(("_low", "_correct")) or "__" in column):
        return "否" if lang == "zh" else "no"
    return level


def label_map(config: Config, books: dict[str, Codebook], lang: str) -> dict[str, str]:
    """Namespaced code → text mapping the charts use (`wave:`, `instrument:`, `compound:`, ...)."""
    T = Strings(lang)
    out: dict[str, str] = {}
    for w in config.waves:
        out[f"wave:{w.id}"] = w.label_zh if lang == "zh" else w.label_en
        out[f"wave_short:{w.id}"] = T("wave.baseline_short") if w.kind == "baseline" else w.id
    out["wave:cumulative"] = out["wave_short:cumulative"] = T("wave.cumulative")
    for inst, book in books.items():
        out[f"instrument:{inst}"] = T.get(f"instrument.{inst}", book.title)
    for c in config.compounds:
        out[f"compound:{c.id}"] = c.name_zh if lang == "zh" else c.name_en
    for line in config.service_lines:
        out[f"line:{line.id}"] = line.name_zh if lang == "zh" else line.name_en
        out[f"area:{line.id}"] = line.area_zh if lang == "zh" else line.area_en
    for section in ("var", "rule"):
        for key in T.table[section]:
            out[f"{section}:{key}"] = T(f"{section}.{key}")
    for level in ("registered", "floating"):
        out[f"hukou:{level}"] = T(f"var.{level}")
    for scope in ("panel", "cross_section", "activity"):
        out[f"scope:{scope}"] = T(f"outcomes.scope_{scope}")
    return out
