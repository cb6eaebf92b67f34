"""Incremental runs: each table's results are keyed by the hashes of everything they depend on.

A (wave, instrument) table depends on its raw files, the configuration, its questionnaire, the decisions
file, the linkage key (respondent keys are derived from it) and the pipeline's code. When none of these
changed, the stored result is reused; a new download for one wave recomputes only that wave's tables. The
cache lives in `.tongxing/cache/` (git-ignored, safe to delete).
"""
from __future__ import annotations

import hashlib
import os
import pickle
from functools import lru_cache
from pathlib import Path

from pipelines import __version__
from pipelines.io import sha256 as file_digest

CACHE_DIR = Path(".tongxing") / "cache"


@lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of the package's source: a code change invalidates every cached result."""
    digest = hashlib.sha256(__version__.encode())
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*")):
        if path.suffix in (".py", ".toml", ".j2") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(package)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def combine(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def folder_key(folder: Path) -> str:
    """Names and contents of every file under a raw-data folder."""
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        entries.append(f"{path.relative_to(folder)}:{file_digest(path)}")
    return combine(*entries)


class Cache:
    def __init__(self, root: Path, enabled: bool = True):
        self.dir = Path(root) / CACHE_DIR
        self.enabled = enabled

    def _path(self, kind: str, key: str) -> Path:
        return self.dir / kind / f"{key}.pkl"

    def get(self, kind: str, key: str):
        path = self._path(kind, key)
        if not self.enabled or not path.exists():
            return None
        try:
            with open(path, "rb") as handle:
                return pickle.load(handle)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            return None  # a damaged or outdated entry is recomputed, never trusted

    def put(self, kind: str, key: str, value) -> None:
        if self.enabled:
            self.put_pickled(kind, key, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

    def put_pickled(self, kind: str, key: str, data: bytes) -> None:
        """`put` of a value already pickled (with `pickle.HIGHEST_PROTOCOL`)."""
        if not self.enabled:
            return
        path = self._path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # (both processes of a run write here)
        tmp.write_bytes(data)
        tmp.replace(path)
        self._prune(kind, keep=path)

    def _prune(self, kind: str, keep: Path, limit: int = 200) -> None:
        def mtime(path: Path) -> float:
            try:
                return path.stat().st_mtime
            except FileNotFoundError:  # pruned meanwhile by the run's other process
                return 0.0

        entries = sorted(self.dir.joinpath(kind).glob("*.pkl"), key=mtime)
        for old in entries[:-limit]:
            if old != keep:
                old.unlink(missing_ok=True)
