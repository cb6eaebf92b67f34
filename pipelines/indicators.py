"""Which clean columns measure which indicator, and how an outcome is read from them.

The service lines in config/project.toml own indicator ids; the codebook marks the questions that measure
them. An outcome is a scale score when the questions form a scale, the share answering "yes" (code 1) for a
binary item, the count of options chosen for a multi-select, and the answer code itself for an ordinal
item. The demo's truth, the outcome statistics and the report all read outcomes through this module.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pipelines.codebook import Codebook
from pipelines.config import Config


@dataclass(frozen=True)
class Outcome:
    column: str          # column of the clean table (after add_scores)
    indicator: str
    service_line: str
    level: str           # interval / ordinal / binary
    label_zh: str
    label_en: str
    instrument: str

    def values(self, frame: pd.DataFrame) -> pd.Series:
        """The outcome as numbers: binary items become 1 (yes, code 1) / 0, others as they are."""
        col = pd.to_numeric(frame[self.column], errors="coerce").astype("Float64")
        if self.level == "binary" and not self.column.endswith(("_low", "_correct")):
            out = (col == 1).astype("Float64")
            out[col.isna()] = pd.NA
            return out
        return col


def outcomes_for(book: Codebook, config: Config) -> list[Outcome]:
    lines = {ind: line.id for line in config.service_lines for ind in line.indicators}
    out: list[Outcome] = []
    seen_scales: set[str] = set()
    for q in book.answer_questions:
        if not q.indicator or q.indicator not in lines:
            continue
        line = lines[q.indicator]
        if q.scale:
            if q.scale in seen_scales:
                continue
            seen_scales.add(q.scale)
            scale = book.scales[q.scale]
            out.append(Outcome(scale.score_column, q.indicator, line, "interval", scale.label_zh, scale.label_en,
                               book.instrument))
        elif q.type == "select_multiple":
            out.append(Outcome(f"{q.name}_count", q.indicator, line, "interval", q.label_zh, q.label_en,
                               book.instrument))
        elif q.type == "select_one":
            level = "binary" if q.measure == "binary" else "ordinal"
            out.append(Outcome(q.name, q.indicator, line, level, q.label_zh, q.label_en, book.instrument))
        elif q.type in ("integer", "decimal"):
            out.append(Outcome(q.name, q.indicator, line, "interval", q.label_zh, q.label_en, book.instrument))
    return out
