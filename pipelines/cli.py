"""The `tongxing` command line (CONTRACT §2).

argparse rather than typer: usage errors must exit 2 with a one-line message, start-up must stay fast for
no-change reruns, and heavy libraries load only in the stage that needs them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from pipelines import __version__
from pipelines.collector import imported
from pipelines.errors import TongxingError

STAGES = ("ingest", "clean", "validate", "weight", "analyze", "report")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tongxing", description="筑梦“童”行 survey pipeline: ingest → clean → "
                                     "validate → weight → analyze → report")
    parser.add_argument("--version", action="version", version=f"tongxing {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="write a complete demo project root at DIR")
    demo.add_argument("dir", type=Path)
    demo.add_argument("--seed", type=int, default=20240601)
    demo.add_argument("--scale", type=int, default=1, help="multiply respondents (benchmarks)")
    demo.add_argument("--data-only", action="store_true",
                      help="write only data_raw/ and demo_truth.json, and only if data_raw/ holds no exports")
    demo.add_argument("--debug", action="store_true")

    def common(p):
        p.add_argument("--root", type=Path, default=Path("."), help="project root (default: current directory)")
        p.add_argument("--quarter", default=None, help="YYYYQn (default: the latest quarter with data)")
        p.add_argument("--verbose", action="store_true", help="show each stage's timing")
        p.add_argument("--debug", action="store_true", help="show Python tracebacks")

    run = sub.add_parser("run", help="run every stage for one quarter and publish reports/<quarter>/")
    common(run)
    run.add_argument("--lang", default="zh,en", help="report languages, comma-separated (zh,en)")
    run.add_argument("--no-cache", action="store_true", help="recompute every stage (ignore .tongxing/cache)")
    for stage in STAGES:
        p = sub.add_parser(stage, help=f"run the pipeline up to the {stage} stage and summarise it")
        common(p)
        if stage == "report":
            p.add_argument("--lang", default="zh,en")
    template = sub.add_parser("template", help="write a paper-entry workbook for a questionnaire")
    template.add_argument("dir", type=Path)
    template.add_argument("--instrument", required=True)
    template.add_argument("--root", type=Path, default=Path("."))
    template.add_argument("--debug", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    root = getattr(args, "root", None) or getattr(args, "dir", Path("."))
    if argv is None:  # (the console script's process: a caller's process keeps its own malloc settings)
        _keep_freed_memory()
    try:
        code = _dispatch(args)
    except TongxingError as exc:
        if getattr(args, "debug", False):
            raise
        print(exc.format(Path(root)), file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted (the earlier publication is unchanged; run again to finish)", file=sys.stderr)
        code = 130
    except Exception as exc:  # a bug, not the user's fault: say so briefly unless --debug
        if getattr(args, "debug", False):
            raise
        print(f"error: internal error: {type(exc).__name__}: {exc} (rerun with --debug and report it)",
              file=sys.stderr)
        code = 2
    if argv is None and _nothing_left_to_tear_down():
        # the console script: skip the interpreter's teardown (freeing pandas' and plotly's module objects one
        # by one takes about half a second, and the user waits for it); every file is closed by now
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _nothing_left_to_tear_down() -> bool:
    """No thread still running and no multiprocessing resource tracker (a spawned helper's semaphores are
    unregistered at exit, or the tracker warns of leaks): then exiting without teardown loses nothing."""
    import threading

    tracker = sys.modules.get("multiprocessing.resource_tracker")
    tracking = tracker is not None and getattr(tracker._resource_tracker, "_pid", None) is not None
    return threading.active_count() == 1 and not tracking


# glibc's malloc options (mallopt(3)) for a run, set at the command's start: freed memory stays with the
# process for its next allocation instead of going back to the kernel. By default a block over 128 KiB (up
# to 32 MiB as it adapts) is mapped afresh and unmapped when freed, and the heap's free top is returned, so
# each new large array, pickle or file buffer faults its pages in again: a demo run took ~245,000 page faults
# and 1.84 s of system time. With these, ~175,000 and 1.55 s (means of 4 alternating runs), for ~35 MB more
# at its peak.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MALLOC_OPTIONS = ((M_MMAP_THRESHOLD, 256 << 20), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 64 << 20))


def _keep_freed_memory() -> None:
    """Apply `MALLOC_OPTIONS` (Linux with glibc; elsewhere nothing changes). A process-wide choice, so the
    console script makes it (`main()` without arguments), not the library a notebook or a test imports; a
    forked helper inherits it."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    for param, value in MALLOC_OPTIONS:
        mallopt(param, value)


def _dispatch(args) -> int:
    if args.command == "demo":
        from pipelines.demo.build import make_demo

        started = time.perf_counter()
        summary = make_demo(args.dir, seed=args.seed, scale=args.scale, data_only=args.data_only)
        if "skipped" in summary:
            print(f"demo: {summary['skipped']}; nothing written")
        else:
            rows = sum(n for wave in summary["rows"].values() for n in wave.values())
            print(f"demo: wrote {rows} responses over {len(summary['rows'])} waves to {args.dir} "
                  f"in {time.perf_counter() - started:.1f}s")
        return 0
    if args.command == "template":
        from pipelines.ingest.paper import write_template

        path = write_template(args.root, args.instrument, args.dir)
        print(path)
        return 0
    runner = imported("pipelines.run")   # (with the collector off: see pipelines.collector)

    langs = tuple(x.strip() for x in getattr(args, "lang", "zh,en").split(",") if x.strip())
    bad = [x for x in langs if x not in ("zh", "en")]
    if bad:
        raise TongxingError(None, f"unknown report language {', '.join(bad)}", "use --lang zh,en")
    from pipelines.progress import Progress

    progress = Progress(verbose=args.verbose)
    if args.command in ("run", "report"):
        try:
            state = runner.run(args.root, args.quarter, langs, progress=progress if progress.active else None,
                               use_cache=not getattr(args, "no_cache", False))
        finally:
            progress.close()
        if state.unchanged:
            print("nothing changed since the last run: the published report stands", file=sys.stderr)
        if args.verbose:
            for stage, seconds in state.timings.items():
                print(f"  {stage:<22}{seconds:6.2f} s", file=sys.stderr)
        for message in state.warnings:
            print(f"warning: {message}", file=sys.stderr)
        print(state.root / "reports" / state.quarter / "report.html")
        return 0
    state = runner.plan(Path(args.root).resolve(), args.quarter)
    try:
        runner.process_tables(state, progress if progress.active else None)
    finally:
        progress.close()
    for (wave, instrument), table in sorted(state.tables.items()):
        counts = table.clean.counts
        print(f"{wave}/{instrument}: {len(table.files)} file(s), {counts['read']} rows read, "
              f"{counts['excluded']} excluded, {counts['kept']} kept")
    if args.command in ("validate", "analyze"):
        from pipelines.validate import raise_on_critical, run_validation

        frames = {k: t.frame for k, t in state.tables.items()}
        docs = Path(args.root).resolve() / ".tongxing" / "validation-docs"
        table = run_validation(frames, state.books, state.config, docs)
        failed = table[~table["success"].astype(bool)]
        print(f"validation: {len(table)} expectations, {len(failed)} failed; Data Docs in {docs}")
        raise_on_critical(table)
    return 0
