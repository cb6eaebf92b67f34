"""The project configuration (`config/project.toml`), loaded once and validated up front.

Every later stage trusts these objects, so every check that can be made on the configuration alone is
made here, and each error names the exact key at fault: an evaluator edits this file by hand.
"""
from __future__ import annotations

import datetime as dt
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.errors import ConfigError

CONFIG_FILE = Path("config") / "project.toml"
QUESTIONNAIRE_DIR = Path("config") / "questionnaires"


@dataclass(frozen=True)
class Compound:
    id: str
    name_zh: str
    name_en: str
    aliases: tuple[str, ...]
    residents: int | None
    children: int | None
    estimate: bool


@dataclass(frozen=True)
class Population:
    id: str
    label_zh: str
    label_en: str
    total: float
    margins: dict[str, dict[str, float]]
    estimate: bool
    source: str


@dataclass(frozen=True)
class Wave:
    id: str
    kind: str  # "baseline" or "quarterly"
    start: dt.date
    end: dt.date
    label_zh: str
    label_en: str


@dataclass(frozen=True)
class ServiceLine:
    id: str
    name_zh: str
    name_en: str
    area_zh: str
    area_en: str
    indicators: tuple[str, ...]
    outputs: dict[str, int]
    vulnerable: bool


@dataclass(frozen=True)
class Thresholds:
    min_cell: int = 5
    speeder_fraction_of_median: float = 0.33
    speeder_min_responses: int = 20
    straightline_min_items: int = 8
    near_duplicate_max_diff: int = 1
    confidence: float = 0.95
    rake_max_iterations: int = 100
    rake_tolerance: float = 1e-8
    weight_trim_ratio: float = 5.0


@dataclass(frozen=True)
class Config:
    root: Path
    project: dict[str, Any]
    thresholds: Thresholds
    strata: str | None
    psu: str | None
    compounds: tuple[Compound, ...]
    populations: dict[str, Population]
    age_bands: dict[str, tuple[tuple[str, int, int], ...]]
    waves: tuple[Wave, ...]
    service_lines: tuple[ServiceLine, ...]
    linkage: dict[str, Any]
    satisfaction: dict[str, Any]
    _alias_index: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def questionnaire_dir(self) -> Path:
        return self.root / QUESTIONNAIRE_DIR

    def wave(self, wave_id: str) -> Wave:
        for w in self.waves:
            if w.id == wave_id:
                return w
        raise ConfigError(self.root / CONFIG_FILE, f"no wave '{wave_id}'",
                          f"declared waves: {', '.join(w.id for w in self.waves)}")

    def waves_up_to(self, wave_id: str) -> list[Wave]:
        ids = [w.id for w in self.waves]
        self.wave(wave_id)
        return list(self.waves[: ids.index(wave_id) + 1])

    def compound_for(self, text: Any) -> str | None:
        """The compound id a typed name means, or None when it matches no known spelling."""
        if text is None:
            return None
        return self._alias_index.get(fold_name(str(text)))

    def service_line_of(self, indicator: str) -> ServiceLine | None:
        for line in self.service_lines:
            if indicator in line.indicators:
                return line
        return None


def fold_name(text: str) -> str:
    """NFKC-fold and drop every kind of space, so `中福城　` and `中福城 ` are the same name."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in text if not ch.isspace()).strip()


def load_config(root: str | Path) -> Config:
    root = Path(root)
    path = root / CONFIG_FILE
    if not path.exists():
        raise ConfigError(path, "configuration file not found",
                          "run `tongxing demo DIR` for a complete example root, or copy config/ from the repository")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # Notepad saves UTF-8 with a BOM
    except UnicodeDecodeError:
        raise ConfigError(path, "is not UTF-8 text", "save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, f"is not valid TOML: {exc}", "fix the syntax at that line") from None
    return _Parser(path, root, raw).parse()


class _Parser:
    """Walks the TOML tree keeping the dotted key, so every error can name it."""

    def __init__(self, path: Path, root: Path, raw: dict):
        self.path, self.root, self.raw = path, root, raw

    def fail(self, key: str, what: str, hint: str = "") -> ConfigError:
        return ConfigError(self.path, f"{key}: {what}", hint)

    def get(self, table: dict, key: str, where: str, kind: type | tuple, default: Any = ...) -> Any:
        full = f"{where}.{key}" if where else key
        if key not in table:
            if default is ...:
                raise self.fail(full, "is missing", "add it; see the bundled config/project.toml")
            return default
        value = table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
            unquote = " without quotes" if isinstance(value, str) and kind is not str else ""
            raise self.fail(full, f"should be {_kind_name(kind)}, not {value!r}",
                            f"write {_kind_name(kind)}{unquote}")
        return value

    def parse(self) -> Config:
        raw = self.raw
        project = self.get(raw, "project", "", dict)
        for key in ("name_zh", "name_en", "community_zh", "community_en"):
            self.get(project, key, "project", str)
        start = self.get(project, "service_start", "project", dt.date)
        end = self.get(project, "service_end", "project", dt.date)
        if end <= start:
            raise self.fail("project.service_end", f"{end} is not after service_start {start}",
                            "correct project.service_start or project.service_end")
        thresholds = self.thresholds(self.get(raw, "thresholds", "", dict, {}))
        design = self.get(raw, "design", "", dict, {})
        compounds = self.compounds(self.get(raw, "compounds", "", list))
        alias_index = self.alias_index(compounds)
        age_bands = self.age_bands(self.get(raw, "age_bands", "", dict, {}))
        populations = self.populations(self.get(raw, "populations", "", dict), compounds, age_bands)
        waves = self.waves(self.get(raw, "waves", "", list), start, end)
        lines = self.service_lines(self.get(raw, "service_lines", "", list))
        linkage = self.get(raw, "linkage", "", dict, {})
        identifier = linkage.get("identifier", "phone")
        if identifier not in ("phone", "name+compound+room"):
            raise self.fail("linkage.identifier", f"unknown identifier {identifier!r}",
                            "use \"phone\" or \"name+compound+room\"")
        return Config(
            root=self.root, project=project, thresholds=thresholds,
            strata=design.get("strata") or None, psu=design.get("psu") or None,
            compounds=compounds, populations=populations, age_bands=age_bands, waves=waves,
            service_lines=lines, linkage={"identifier": identifier,
                                          "key_file": linkage.get("key_file", ".tongxing/linkage.key")},
            satisfaction=self.get(raw, "satisfaction", "", dict, {}), _alias_index=alias_index)

    def thresholds(self, table: dict) -> Thresholds:
        defaults = Thresholds()
        values = {}
        for name in Thresholds.__dataclass_fields__:
            kind = type(getattr(defaults, name))
            values[name] = self.get(table, name, "thresholds", kind, getattr(defaults, name))
        if values["min_cell"] < 1:
            raise self.fail("thresholds.min_cell", "must be at least 1", "write e.g. min_cell = 5")
        if not 0 < values["speeder_fraction_of_median"] < 1:
            raise self.fail("thresholds.speeder_fraction_of_median", "must be between 0 and 1",
                            "write a share of the median time, e.g. 0.33")
        if not 0.5 < values["confidence"] < 1:
            raise self.fail("thresholds.confidence", "must be between 0.5 and 1", "write e.g. confidence = 0.95")
        return Thresholds(**values)

    def compounds(self, items: list) -> tuple[Compound, ...]:
        out, seen = [], set()
        for i, item in enumerate(items):
            where = f"compounds[{i}]"
            if not isinstance(item, dict):
                raise self.fail(where, "should be a [[compounds]] table",
                                "write each compound as a [[compounds]] block with id, name_zh and name_en")
            cid = self.get(item, "id", where, str)
            if cid in seen:
                raise self.fail(f"{where}.id", f"duplicate compound id {cid!r}", "give each compound its own id")
            seen.add(cid)
            out.append(Compound(
                id=cid, name_zh=self.get(item, "name_zh", where, str), name_en=self.get(item, "name_en", where, str),
                aliases=tuple(self.get(item, "aliases", where, list, [])),
                residents=self.get(item, "residents", where, int, None),
                children=self.get(item, "children", where, int, None),
                estimate=self.get(item, "estimate", where, bool, False)))
        if not out:
            raise self.fail("compounds", "no compound declared", "add a [[compounds]] block per residential compound")
        return tuple(out)

    def alias_index(self, compounds: tuple[Compound, ...]) -> dict[str, str]:
        index: dict[str, str] = {}
        for i, c in enumerate(compounds):
            for spelling in (c.name_zh, c.id, *c.aliases):
                key = fold_name(str(spelling))
                if key in index and index[key] != c.id:
                    raise self.fail(f"compounds[{i}].aliases",
                                    f"{spelling!r} is also a spelling of compound {index[key]!r}",
                                    "an alias must point to one compound only")
                index[key] = c.id
        return index

    def age_bands(self, table: dict) -> dict[str, tuple[tuple[str, int, int], ...]]:
        out = {}
        for name, bands in table.items():
            parsed = []
            for j, band in enumerate(bands):
                if not (isinstance(band, list) and len(band) == 3 and isinstance(band[0], str)
                        and all(isinstance(x, int) for x in band[1:]) and band[1] <= band[2]):
                    raise self.fail(f"age_bands.{name}[{j}]", f"should be [label, min_age, max_age], not {band!r}",
                                    'write e.g. ["8-11", 8, 11] (whole years, upper bound included)')
                parsed.append((band[0], band[1], band[2]))
            out[name] = tuple(parsed)
        return out

    def populations(self, table: dict, compounds, age_bands) -> dict[str, Population]:
        compound_ids = {c.id for c in compounds}
        out = {}
        for pid, item in table.items():
            where = f"populations.{pid}"
            total = self.get(item, "total", where, float)
            margins = self.get(item, "margins", where, dict)
            if not margins:
                raise self.fail(f"{where}.margins", "no margin declared", "add at least the compound margin")
            parsed: dict[str, dict[str, float]] = {}
            for var, levels in margins.items():
                mkey = f"{where}.margins.{var}"
                if not isinstance(levels, dict) or not levels:
                    raise self.fail(mkey, "should be a table of level = population count",
                                    f"write a [{mkey}] table with one `level = count` line per level")
                for level, count in levels.items():
                    if not isinstance(count, (int, float)) or isinstance(count, bool) or count <= 0:
                        raise self.fail(f"{mkey}.{level}", f"should be a positive count, not {count!r}",
                                        "write the number of people, e.g. 275")
                if var == "compound":
                    unknown = sorted(set(levels) - compound_ids)
                    if unknown:
                        raise self.fail(mkey, f"unknown compound id(s) {', '.join(unknown)}",
                                        f"use the ids of [[compounds]]: {', '.join(sorted(compound_ids))}")
                    missing = sorted(compound_ids - set(levels))
                    if missing:
                        raise self.fail(mkey, f"no count for compound(s) {', '.join(missing)}",
                                        "every compound needs a population count")
                elif var in age_bands:
                    known = {b[0] for b in age_bands[var]}
                    unknown = sorted(set(levels) - known)
                    if unknown:
                        raise self.fail(mkey, f"unknown band(s) {', '.join(unknown)}",
                                        f"bands of age_bands.{var}: {', '.join(sorted(known))}")
                added = float(sum(levels.values()))
                if abs(added - total) > 0.5:
                    raise self.fail(mkey, f"adds up to {added:g}, not the population total {total:g}",
                                    "every margin of a population must add up to its total")
                parsed[var] = {str(k): float(v) for k, v in levels.items()}
            out[pid] = Population(
                id=pid, label_zh=self.get(item, "label_zh", where, str, pid),
                label_en=self.get(item, "label_en", where, str, pid), total=total, margins=parsed,
                estimate=self.get(item, "estimate", where, bool, False),
                source=self.get(item, "source", where, str, ""))
        return out

    def waves(self, items: list, service_start: dt.date, service_end: dt.date) -> tuple[Wave, ...]:
        out, seen = [], set()
        for i, item in enumerate(items):
            where = f"waves[{i}]"
            wid = self.get(item, "id", where, str)
            if wid in seen:
                raise self.fail(f"{where}.id", f"duplicate wave id {wid!r}",
                                "give each wave its own id (a copied [[waves]] block keeps the old one)")
            seen.add(wid)
            kind = self.get(item, "kind", where, str)
            if kind not in ("baseline", "quarterly"):
                raise self.fail(f"{where}.kind", f"unknown kind {kind!r}", "use \"baseline\" or \"quarterly\"")
            start = self.get(item, "start", where, dt.date)
            end = self.get(item, "end", where, dt.date)
            if end < start:
                raise self.fail(f"{where}.end", f"{end} is before start {start}", "correct start or end")
            if kind == "quarterly" and (start < service_start or end > service_end):
                raise self.fail(where, f"wave {wid} ({start} – {end}) lies outside the service year "
                                f"{service_start} – {service_end}",
                                "correct its dates or project.service_start/service_end")
            if out and start < out[-1].start:
                raise self.fail(where, f"wave {wid} starts before the wave listed above it",
                                "list waves in time order")
            out.append(Wave(id=wid, kind=kind, start=start, end=end,
                            label_zh=self.get(item, "label_zh", where, str, wid),
                            label_en=self.get(item, "label_en", where, str, wid)))
        if not out:
            raise self.fail("waves", "no wave declared", "add a [[waves]] block for the baseline and each quarter")
        if out[0].kind != "baseline":
            raise self.fail("waves[0].kind", "the first wave must be the baseline",
                            'list the needs survey (kind = "baseline") first')
        return tuple(out)

    def service_lines(self, items: list) -> tuple[ServiceLine, ...]:
        out, owner = [], {}
        for i, item in enumerate(items):
            where = f"service_lines[{i}]"
            lid = self.get(item, "id", where, str)
            indicators = tuple(self.get(item, "indicators", where, list))
            for ind in indicators:
                if ind in owner:
                    raise self.fail(f"{where}.indicators", f"indicator {ind!r} already belongs to {owner[ind]!r}",
                                    "an indicator belongs to one service line: remove it from one of them")
                owner[ind] = lid
            outputs = self.get(item, "outputs", where, dict, {})
            out.append(ServiceLine(
                id=lid, name_zh=self.get(item, "name_zh", where, str), name_en=self.get(item, "name_en", where, str),
                area_zh=self.get(item, "area_zh", where, str, ""), area_en=self.get(item, "area_en", where, str, ""),
                indicators=indicators, outputs={k: int(v) for k, v in outputs.items()},
                vulnerable=self.get(item, "vulnerable", where, bool, False)))
        return tuple(out)


def _kind_name(kind) -> str:
    names = {str: "text", int: "a whole number", float: "a number", bool: "true or false", list: "a list",
             dict: "a table", dt.date: "a date like 2024-11-01"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)
