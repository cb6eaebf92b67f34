"""The clean-data product for analysts: load tables with their design, or query every wave with SQL.

Notebooks use these functions instead of reading files by hand, so an analysis sees exactly the rows,
weights and design the published report used.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from pipelines.survey import Design

REPO = Path(__file__).resolve().parent.parent


def project_root(root: str | Path | None = None) -> Path:
    """The root to analyse: the argument, else $TONGXING_ROOT, else the repository itself."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get("TONGXING_ROOT", REPO))


def waves(root: str | Path | None = None) -> list[str]:
    clean = project_root(root) / "data_clean"
    return sorted(p.name for p in clean.iterdir() if p.is_dir()) if clean.exists() else []


def load(wave: str, instrument: str, root: str | Path | None = None) -> pd.DataFrame:
    path = project_root(root) / "data_clean" / wave / f"{instrument}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `tongxing run` first (waves here: {waves(root)})")
    return pd.read_parquet(path)


def load_all(instrument: str, root: str | Path | None = None) -> pd.DataFrame:
    """One instrument's clean rows across every wave (columns that a wave lacks are empty)."""
    frames = [load(w, instrument, root) for w in waves(root)
              if (project_root(root) / "data_clean" / w / f"{instrument}.parquet").exists()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def design(wave: str, instrument: str, root: str | Path | None = None) -> Design:
    """The survey design the report used for this table (weights, strata, raking margins)."""
    from pipelines.weights import design_from_json

    frame = load(wave, instrument, root)
    spec = json.loads((project_root(root) / "data_clean" / wave / f"{instrument}.design.json")
                      .read_text(encoding="utf-8"))
    return design_from_json(frame, spec)


def connect(root: str | Path | None = None):
    """An in-memory DuckDB connection with views over the clean Parquet files of every wave.

    Views: `<instrument>` (wide, all waves, one row per response), `answers` (long: response_id, wave,
    instrument, column, value as text), `exclusions` and `cleaning_log` (all waves).
    """
    import duckdb

    base = project_root(root) / "data_clean"
    con = duckdb.connect()
    instruments = sorted({p.stem for p in base.glob("*/*.parquet") if not p.stem.endswith(".missing")})
    longs = []
    for instrument in instruments:
        pattern = str(base / "*" / f"{instrument}.parquet").replace("'", "''")
        con.execute(f"CREATE VIEW \"{instrument}\" AS SELECT * FROM read_parquet('{pattern}', union_by_name=true)")
        columns = [r[0] for r in con.execute(f"DESCRIBE \"{instrument}\"").fetchall()]
        keep = [c for c in columns if c not in ("response_id", "wave", "instrument")]
        if keep:
            cast = ", ".join(f"CAST(\"{c}\" AS VARCHAR) AS \"{c}\"" for c in keep)
            longs.append(f"SELECT * FROM (UNPIVOT (SELECT response_id, wave, instrument, {cast} FROM \"{instrument}\") "
                         f"ON COLUMNS(* EXCLUDE (response_id, wave, instrument)) INTO NAME \"column\" VALUE value)")
    if longs:
        con.execute("CREATE VIEW answers AS " + " UNION ALL ".join(longs))
    for name in ("exclusions", "cleaning_log"):
        files = sorted(base.glob(f"*/{name}.csv"))
        if files:
            listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_csv([{listing}], header=true, all_varchar=true, "
                        "filename=true)")
    return con
