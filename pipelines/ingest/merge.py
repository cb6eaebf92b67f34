"""Several downloads of one wave/instrument → one RawResponses frame, each response once.

* 按文本 + 按序号 downloads of the same responses are joined on `platform_id`: the coded row (its codes, its
  `source_file`/`source_row` and its missing reasons) is kept and the text download's "other, please specify"
  texts (`<name>_other`, absent from coded downloads) are filled in. A text-only or coded-only set works alone.
* The same export present twice (identical files, or two downloads with overlapping 序号 ranges) never
  double-counts: within each mode the first file's row per `platform_id` is kept (files in the order given).
* Accounting, per file in `info["files"]`: rows = kept + duplicates + joined (text rows merged into a coded row).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.codebook import Codebook
from pipelines.frames import column_arrays


def merge_downloads(parts: list[tuple[pd.DataFrame, pd.DataFrame, dict]], codebook: Codebook | None = None):
    """(frame, missing, info) of several files → one (frame, missing, info)."""
    if not parts:
        raise ValueError("merge_downloads needs at least one (frame, missing, info)")
    files: dict[str, dict] = {}
    for frame, _missing, info in parts:
        name = info.get("file") or (str(frame["source_file"].iloc[0]) if len(frame) else f"part{len(files)}")
        entry = files.setdefault(name, {"rows": 0, "kept": 0, "duplicates": 0, "joined": 0,
                                        "mode": info.get("mode", "")})
        entry["rows"] += len(frame)
    coded = [p for p in parts if p[2].get("mode", "text") != "text"]
    text = [p for p in parts if p[2].get("mode", "text") == "text"]
    coded_f, text_f = _dedup(coded, files), _dedup(text, files)
    joined = 0
    conflicts = 0
    if coded_f is not None and text_f is not None:
        ids = text_f["platform_id"]
        in_coded = (ids.notna() & ids.isin(coded_f["platform_id"].dropna())).to_numpy()
        matched = np.flatnonzero(in_coded)  # text rows joined to a coded row (positions: no frame is cut)
        _count(files, text_f["source_file"].iloc[matched], "joined")
        joined = len(matched)
        coded_f, conflicts = _fill_other(coded_f, text_f, matched, codebook)
        if in_coded.all() and _same_layout(coded_f, text_f):
            result = coded_f  # (no text row left to append)
        else:
            result = pd.concat([coded_f, text_f[~in_coded]], ignore_index=True)
    else:
        result = coded_f if coded_f is not None else text_f
    result = _order(result)
    _count(files, result["source_file"], "kept")
    missing = _kept_missing([m for _, m, _ in parts], result)
    info = {"rows": len(result), "files": files, "joined": joined,
            "duplicates": sum(f["duplicates"] for f in files.values()), "conflicts": conflicts}
    return result, missing, info


def _dedup(group, files: dict) -> pd.DataFrame | None:
    if not group:
        return None
    frame = pd.concat([f for f, _, _ in group], ignore_index=True) if len(group) > 1 else group[0][0]
    ids = frame["platform_id"]
    dup = (ids.notna() & ids.duplicated(keep="first")).to_numpy()
    if dup.any():
        _count(files, frame["source_file"][dup], "duplicates")
        frame = frame[~dup]
    if frame.index.equals(pd.RangeIndex(len(frame))):
        return frame  # (the caller copies before changing it, and the merged frame is always a new one)
    return frame.reset_index(drop=True)


def _same_layout(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Same columns with the same dtypes: appending no rows of `b` to `a` would change nothing."""
    return list(a.columns) == list(b.columns) and a.dtypes.tolist() == b.dtypes.tolist()


def _count(files: dict, source_file: pd.Series, key: str) -> None:
    """Rows per source file (`value_counts(sort=False)`: first-seen order, missing names left out)."""
    take, names = pd.factorize(source_file)
    counts = np.bincount(take[take >= 0], minlength=len(names))
    for name, n in zip(names, counts):
        files.setdefault(str(name), {"rows": 0, "kept": 0, "duplicates": 0, "joined": 0, "mode": ""})[key] += int(n)


def _other_columns(frame: pd.DataFrame, codebook: Codebook | None) -> list[str]:
    if codebook is not None:
        return [q.other_column for q in codebook.questions if q.other_choice is not None
                and q.other_column in frame.columns]
    return [c for c in frame.columns if c.endswith("_other") and pd.api.types.is_string_dtype(frame[c])]


def _fill_other(coded: pd.DataFrame, text: pd.DataFrame, matched: np.ndarray,
                codebook) -> tuple[pd.DataFrame, int]:
    """Coded rows get the `_other` texts of the `matched` text rows (positions in `text`); returns the frame
    and how many rows disagree in codes.

    Each coded row's text row is found by position (`get_indexer` on the unique 序号, -1: none), and only the
    columns used are read, column by column: cutting and re-indexing the whole text frame cost more."""
    at = pd.Index(text["platform_id"].iloc[matched]).get_indexer(coded["platform_id"])
    source = np.where(at >= 0, matched[np.maximum(at, 0)] if len(matched) else -1, -1)  # row in `text`, or -1
    found = source >= 0
    text_columns = set(text.columns) - {"platform_id"}
    coded = coded.copy(deep=False)  # (only whole columns are replaced below)
    for col in _other_columns(coded, codebook):
        if col in text_columns:
            texts = pd.Series(text[col].array.take(source, allow_fill=True)).to_numpy()  # no text row: missing
            coded[col] = coded[col].fillna(pd.Series(texts, index=coded.index))
    code_cols = [c for c, dtype in zip(coded.columns, coded.dtypes)
                 if isinstance(dtype, pd.Int64Dtype) and c in text_columns]
    if not code_cols:
        return coded, 0
    a = np.column_stack([_floats(cells) for cells in column_arrays(coded, code_cols)])
    b = np.full(a.shape, np.nan)
    b[found] = np.column_stack([_floats(cells) for cells in column_arrays(text, code_cols)])[source[found]]
    differ = ((a != b) & ~np.isnan(a) & ~np.isnan(b)).any(axis=1)
    return coded, int(differ.sum())


def _floats(cells) -> np.ndarray:
    """A column's array (`Series.array`) as `to_numpy(dtype=float, na_value=nan)`, as DataFrame.to_numpy
    converts each column."""
    return np.asarray(cells.to_numpy(dtype=float, na_value=np.nan), dtype=float)


def _order(frame: pd.DataFrame) -> pd.DataFrame:
    """序号 order (numeric where possible), stable."""
    key = pd.to_numeric(frame["platform_id"], errors="coerce").astype(float)
    if key.is_monotonic_increasing and key.notna().all():
        return frame.reset_index(drop=True)
    # plain numbers first, then prefixed ids (kobo-…, tencent-…) by prefix and number
    ids = frame["platform_id"].astype(str)
    prefix = ids.str.replace(r"\d+$", "", regex=True).to_numpy()
    number = pd.to_numeric(ids.str.extract(r"(\d+)$", expand=False), errors="coerce").fillna(np.inf).to_numpy()
    order = np.lexsort((np.arange(len(frame)), number, prefix))
    return frame.iloc[order].reset_index(drop=True)


def _kept_missing(missings: list[pd.DataFrame], result: pd.DataFrame) -> pd.DataFrame:
    missing = pd.concat(missings, ignore_index=True) if len(missings) > 1 else missings[0]
    if missing.empty:
        return missing.reset_index(drop=True)
    keep = np.zeros(len(missing), dtype=bool)
    for name, rows in result.groupby("source_file", sort=False, observed=True)["source_row"]:
        in_file = (missing["source_file"] == name).to_numpy(dtype=bool, na_value=False)
        keep |= in_file & missing["source_row"].isin(rows.to_numpy()).to_numpy()
    # the same file given twice: keep one copy of its reasons
    out = missing[keep]
    names = [str(m["source_file"].iloc[0]) for m in missings if len(m)]
    if len(names) != len(set(names)):
        out = out.drop_duplicates()
    return out.reset_index(drop=True)
