"""Ingest: every export in `data_raw/<wave>/<instrument>/` → one RawResponses frame (docs/architecture.md).

Each file is read as a table of strings (`tables.read_table`), its platform is recognised from its header row
by the first adapter whose `detect(headers)` is true (`ADAPTERS`: 问卷星, paper entry, 腾讯问卷, KoboToolbox;
SPSS .sav files go to `spss.read_sav`), read by that adapter into (frame, missing, info), and the files are merged
(`merge.merge_downloads`): a 按文本 and a 按序号 download of the same responses become one row per response,
the same export present twice is counted once.

`source_file` is the path relative to `root`, `source_row` the 1-based data row in that file. For a response
present in both a coded and a text download, the row keeps the **coded** file's `source_file`/`source_row`
(and its missing reasons); the text file only contributes the "other" texts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from pipelines.codebook import Codebook
from pipelines.errors import InputError
from pipelines.io import sha256
from pipelines.ingest import kobo, paper, spss, tencent, wjx
from pipelines.ingest.merge import merge_downloads
from pipelines.ingest.tables import empty_frame, read_table, relative


@dataclass(frozen=True)
class Adapter:
    platform: str
    detect: Callable[[list[str]], bool]
    read: Callable  # (table, path, codebook, root) -> (frame, missing, info)


ADAPTERS: list[Adapter] = [Adapter(wjx.PLATFORM, wjx.looks_like_wjx, wjx.read_wjx_table),
                           Adapter(paper.PLATFORM, paper.looks_like_paper, paper.read_paper_table),
                           Adapter(tencent.PLATFORM, tencent.looks_like_tencent, tencent.read_tencent_table),
                           Adapter(kobo.PLATFORM, kobo.looks_like_kobo, kobo.read_kobo_table)]
PLATFORM_FILE = "platform.txt"  # data_raw/<wave>/<instrument>/platform.txt names the adapter for the folder
IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}


@dataclass
class IngestResult:
    frame: pd.DataFrame
    missing: pd.DataFrame
    files: list[dict] = field(default_factory=list)
    merge: dict = field(default_factory=dict)


def is_ignored(path: Path) -> bool:
    name = path.name
    return (name.startswith(("~$", ".")) or name.lower() in IGNORED_NAMES
            or name.lower().startswith("readme") or not path.is_file())


def read_export(path: str | Path, codebook: Codebook, root: str | Path | None = None, platform: str | None = None):
    """One export file → (frame, missing, info) via the adapter that recognises it (or `platform`'s adapter).

    SPSS files (.sav, 问卷星's SPSS download) are not tables of strings: they go to `spss.read_sav`.
    """
    path = Path(path)
    if path.suffix.lower() == ".sav":
        frame, missing, info = spss.read_sav(path, codebook, root)
        return frame, missing, {"file": relative(path, root), **info}
    forced = next((a for a in ADAPTERS if a.platform == platform), None) if platform is not None else None
    if platform is not None and forced is None:
        known = ", ".join(a.platform for a in ADAPTERS)
        raise InputError(path, f"platform '{platform}' is not a known platform (known: {known})",
                         f"write one of {known} in {PLATFORM_FILE}")
    # title rows above the header and a summary sheet before the answers are skipped (tables.read_table)
    table = read_table(path, accept=forced.detect if forced else lambda h: any(a.detect(h) for a in ADAPTERS))
    headers = [str(h) for h in table.columns]
    adapter = forced or next((a for a in ADAPTERS if a.detect(headers)), None)
    if adapter is not None:
        layout = {}
        if table.attrs.get("header_row", 1) != 1:
            layout["header_row"] = table.attrs["header_row"]  # rows above it (a title) were skipped
        if not table.attrs.get("first_sheet", True):
            layout["sheet"] = table.attrs["sheet"]  # the answers were not on the first sheet
        frame, missing, info = adapter.read(table, path, codebook, root)
        if adapter.platform != wjx.PLATFORM:
            # response numbers restart at 1 on every platform: keep a 腾讯问卷 编号 7 apart from 问卷星 序号 7
            frame["platform_id"] = adapter.platform + "-" + frame["platform_id"].astype("string")
        info = {"file": relative(path, root), **info, **layout}
        return frame, missing, info
    known = ", ".join(a.platform for a in ADAPTERS)
    shown = ", ".join(h for h in headers[:4] if h) or "(empty cells)"
    names = {h.strip() for h in headers}
    if len(names & wjx.WJX_META) >= 2 and not wjx.looks_like_wjx(headers):
        raise InputError(path, "looks like a 问卷星 download whose 提交答卷时间 column was deleted or renamed",
                         "download the answers again from 问卷星 and put the file here unedited")
    raise InputError(path, f"is not an export of a known platform (known: {known}); its first row reads {shown}",
                     "keep only the platform's downloads in this folder (move notes and other files elsewhere), "
                     "or download the answers again without editing the header row")


def folder_platform(folder: Path) -> str | None:
    """The platform named in the folder's platform.txt (first non-empty line), or None."""
    path = folder / PLATFORM_FILE
    if not path.is_file():
        return None
    lines = [line.strip().lower() for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines()]
    name = next((line for line in lines if line and not line.startswith("#")), "")
    known = [a.platform for a in ADAPTERS]
    if name not in known:
        raise InputError(path, f"names platform '{name}', which is not one of {', '.join(known)}",
                         "write just the platform name, e.g. kobo, or delete the file to detect it from the header")
    return name


def _no_exports_in_subfolders(folder: Path) -> None:
    """Exports are read from the instrument folder itself: a folder inside it holding files (an unzipped
    download, an "old" folder) would otherwise be skipped without a word."""
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))):
        inside = [p for p in sub.rglob("*") if p.is_file() and not is_ignored(p)]
        if inside:
            raise InputError(sub, f"is a folder inside an instrument folder ({len(inside)} file(s) in it are not read)",
                             f"move the downloads directly into {folder.name}/ and delete the folder, or move it "
                             "out of data_raw/ if it holds old downloads")


def ingest_folder(folder: str | Path, codebook: Codebook, root: str | Path | None = None) -> IngestResult:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "folder not found", "put the downloads in data_raw/<wave>/<instrument>/")
    platform = folder_platform(folder)
    _no_exports_in_subfolders(folder)
    paths = sorted(p for p in folder.iterdir() if not is_ignored(p) and p.name.lower() != PLATFORM_FILE)
    if not paths:
        raise InputError(folder, "has no export files", "put the platform's downloads (.xlsx/.xls/.csv/.sav) here")
    parts, files = [], []
    seen: dict[str, str] = {}
    for path in paths:
        digest = sha256(path)
        frame, missing, info = read_export(path, codebook, root, platform)
        entry = {"file": info["file"], "path": info["file"], "sha256": digest,
                 **{k: v for k, v in info.items() if k != "file"}}
        if digest in seen:
            entry["same_as"] = seen[digest]
        seen.setdefault(digest, info["file"])
        files.append(entry)
        parts.append((frame, missing, info))
    frame, missing, merged = merge_downloads(parts, codebook)
    for entry in files:
        counts = merged["files"].get(entry["file"], {})
        entry.update(duplicates=counts.get("duplicates", 0), joined=counts.get("joined", 0),
                     kept=counts.get("kept", 0))
    return IngestResult(frame=frame, missing=missing, files=files, merge=merged)


__all__ = ["ADAPTERS", "Adapter", "IngestResult", "empty_frame", "ingest_folder", "merge_downloads", "read_export"]
