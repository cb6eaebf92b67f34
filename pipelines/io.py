"""Reading and writing files: the only place stages touch the disk.

Tables are written deterministically (fixed column order, UTF-8 with BOM so Excel in China opens them, `\\n`
line ends) and publications are swapped in whole: a directory is built beside its target and renamed over
it, so an interrupted run leaves the previous publication as it was.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\n")


def write_json(data, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True, default=str) + "\n",
                    encoding="utf-8")


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as the bytes of a parquet file (the same for the same frame, in any process).

    These are `frame.to_parquet(buffer, index=False, engine="pyarrow", compression="zstd")`'s bytes, made
    with pyarrow directly so that the columns convert in this thread: for a long frame (rows > 100 × columns,
    the missing-answers table) pandas lets pyarrow start a thread pool, which costs more CPU than the
    conversion of a few hundred rows it spreads."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False, nthreads=1)
    if frame.attrs:  # as pandas stores them
        table = table.replace_schema_metadata({**table.schema.metadata,
                                               "PANDAS_ATTRS": json.dumps(frame.attrs)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


@contextmanager
def staged_directory(target: Path):
    """Yield a fresh directory beside `target`; on success it replaces `target` in one rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = target.parent / f".{target.name}.new-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    if target.exists():
        os.replace(target, old)
    os.replace(stage, target)
    shutil.rmtree(old, ignore_errors=True)


def remove_stale_stages(folder: Path) -> None:
    """Leftovers of an interrupted run (`.<name>.new-*`, `.<name>.old-*`) are removed; targets stay."""
    if not folder.exists():
        return
    for leftover in folder.glob(".*.new-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in folder.glob(".*.old-*"):
        target = folder / leftover.name[1:].split(".old-")[0]
        if not target.exists():
            os.replace(leftover, target)  # the swap was cut between its two renames: restore
        else:
            shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def root_lock(root: Path):
    """One run per root at a time: a lock file held with fcntl for the run's duration."""
    import fcntl

    from pipelines.errors import TongxingError

    lock_dir = Path(root) / ".tongxing"
    lock_dir.mkdir(parents=True, exist_ok=True)
    handle = open(lock_dir / "run.lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise TongxingError(lock_dir / "run.lock", "another tongxing run is using this root",
                            "wait for it to finish, then run again") from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
