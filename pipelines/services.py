"""Service outputs (产出) from the attendance records: activities held, attendances, unique people.

Names and phones in the sign-in sheets are hashed with the linkage key only to count distinct people; no
personal value leaves this module.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.config import Config
from pipelines.errors import InputError
from pipelines.privacy import normalise_phone, normalise_text_id, respondent_keys

REQUIRED = ["活动日期", "服务线", "活动名称"]
COLUMNS = ["wave", "service_line", "activities", "attendances", "people", "vulnerable"]


def read_service_records(folder: Path, root: Path) -> pd.DataFrame:
    from pipelines.ingest.tables import read_table

    frames = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".xlsx", ".xls", ".csv")
                       and not p.name.startswith("~$")):
        table = read_table(path)
        table.columns = [str(c).strip() for c in table.columns]
        missing = [c for c in REQUIRED if c not in table.columns]
        if missing:
            raise InputError(path.relative_to(root), f"service records lack column(s) {', '.join(missing)}",
                             "use the template in docs/services.md")
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=REQUIRED)


def summarise(records: pd.DataFrame, wave: str, config: Config, key: bytes) -> pd.DataFrame:
    """Per service line: activities, attendances and unique people in one wave's records."""
    names = {line.name_zh: line.id for line in config.service_lines} | {l.id: l.id for l in config.service_lines}
    records = records.copy()
    records["line"] = records["服务线"].astype(str).str.strip().map(names)
    phone = records["联系电话"].map(normalise_phone) if "联系电话" in records else pd.Series("", index=records.index)
    name = records["签到人姓名"].map(normalise_text_id) if "签到人姓名" in records else pd.Series("", index=records.index)
    records["person"] = respondent_keys(phone.where(phone != "", "name:" + name), key)
    rows = []
    for line in config.service_lines:
        part = records[records["line"] == line.id]
        rows.append({"wave": wave, "service_line": line.id,
                     "activities": int(part[["活动日期", "活动名称"]].drop_duplicates().shape[0]),
                     "attendances": int(len(part)), "people": int(part["person"].nunique()),
                     "vulnerable": bool(line.vulnerable), "_people_keys": set(part["person"])})
    return pd.DataFrame(rows)


def service_table(per_wave: list[pd.DataFrame], config: Config) -> pd.DataFrame:
    """Per-wave rows plus a cumulative row per service line with targets and completion shares."""
    if not per_wave:
        return pd.DataFrame(columns=COLUMNS + ["target_activities", "target_attendances", "target_people",
                                               "completion_activities", "completion_attendances", "completion_people"])
    table = pd.concat(per_wave, ignore_index=True)
    rows = []
    for line in config.service_lines:
        part = table[table["service_line"] == line.id]
        people = set().union(*part["_people_keys"]) if len(part) else set()
        row = {"wave": "cumulative", "service_line": line.id, "activities": int(part["activities"].sum()),
               "attendances": int(part["attendances"].sum()), "people": len(people), "vulnerable": line.vulnerable}
        for k in ("activities", "attendances", "people"):
            target = line.outputs.get(k)
            row[f"target_{k}"] = target
            row[f"completion_{k}"] = row[k] / target if target else np.nan
        rows.append(row)
    out = pd.concat([table.drop(columns="_people_keys"), pd.DataFrame(rows)], ignore_index=True)
    minimum = config.thresholds.min_cell
    # vulnerable groups are never shown below the minimum cell
    small = out["vulnerable"].astype(bool) & (out["people"] < minimum)
    out["people"] = out["people"].astype("Int64")
    out.loc[small, "people"] = pd.NA
    out["suppressed"] = small
    return out
