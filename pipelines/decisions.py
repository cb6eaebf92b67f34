"""The evaluator's decisions file: manual review that survives reruns.

`config/decisions.csv` (UTF-8, one row per decision): `response_id, action, column, value, reason` with
action `keep` (overrule an automatic exclusion), `drop` (exclude the response) or `set` (give `column`
the value `value`). Every run re-applies the file and logs each decision, so an evaluator never edits a
raw export and never loses a review when a download is replaced.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines.codebook import Codebook
from pipelines.errors import ConfigError

DECISIONS_FILE = Path("config") / "decisions.csv"
COLUMNS = ["response_id", "action", "column", "value", "reason"]


def load_decisions(root: Path) -> pd.DataFrame:
    path = Path(root) / DECISIONS_FILE
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    try:
        try:
            frame = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False)
        except UnicodeDecodeError:  # Excel on Chinese Windows saves "CSV" as GBK
            frame = pd.read_csv(path, dtype=str, encoding="gb18030", keep_default_na=False)
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ConfigError(path, f"cannot be read: {exc}", "save it as UTF-8 CSV with the columns "
                          + ", ".join(COLUMNS)) from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(path, f"lacks column(s) {', '.join(missing)}", "the header is " + ",".join(COLUMNS))
    bad = frame[~frame["action"].isin(["keep", "drop", "set"])]
    if len(bad):
        raise ConfigError(path, f"row {bad.index[0] + 2}: unknown action {bad['action'].iloc[0]!r}",
                          "use keep, drop or set")
    unexplained = frame[frame["reason"].str.strip() == ""]
    if len(unexplained):
        raise ConfigError(path, f"row {unexplained.index[0] + 2}: a decision needs a reason",
                          "write why, so the next evaluator can follow it")
    return frame


@dataclass
class Decisions:
    keep: pd.Series
    drop: pd.Series
    drop_reason: pd.Series
    sets: pd.DataFrame

    def apply_sets(self, df: pd.DataFrame) -> pd.DataFrame | None:
        logs = []
        index = pd.Series(df.index, index=df["response_id"])
        for row in self.sets.itertuples(index=False):
            if row.response_id not in index or row.column not in df.columns:
                continue
            i = index[row.response_id]
            old = df.at[i, row.column]
            value = pd.to_numeric(row.value, errors="coerce") if pd.api.types.is_numeric_dtype(df[row.column]) \
                else row.value
            df.at[i, row.column] = value
            logs.append({"response_id": row.response_id, "column": row.column,
                         "old": "" if pd.isna(old) else str(old), "new": row.value,
                         "rule": f"decision_set: {row.reason}"})
        return pd.DataFrame(logs) if logs else None


def apply_decisions(df: pd.DataFrame, decisions: pd.DataFrame | None, book: Codebook) -> Decisions:
    empty = pd.Series(False, index=df.index)
    if decisions is None or not len(decisions):
        return Decisions(empty, empty.copy(), pd.Series("", index=df.index), pd.DataFrame(columns=COLUMNS))
    ids = df["response_id"]
    keep_ids = set(decisions.loc[decisions["action"] == "keep", "response_id"])
    drops = decisions[decisions["action"] == "drop"].drop_duplicates("response_id").set_index("response_id")
    drop = ids.isin(drops.index)
    reason = ids.map(drops["reason"]).fillna("").map(lambda r: f"评估人员决定剔除：{r}" if r else "")
    sets = decisions[(decisions["action"] == "set") & decisions["response_id"].isin(set(ids))]
    return Decisions(ids.isin(keep_ids), drop, reason, sets)
