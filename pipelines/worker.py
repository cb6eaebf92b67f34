"""A second process for `tongxing run`: it shares the table work, then validates beside the analysis.

The run's CPU time is dominated by pure-Python work (pandas bookkeeping in ingest and cleaning, Great
Expectations' per-expectation overhead) which threads cannot share. One helper process gives the second
core something to do:

1. it imports Great Expectations while the main process starts on the tables;
2. then both processes ingest, clean and weight the tables, each taking the next job nobody has taken
   (largest first, so they finish close together); the main process sends each table it computed at once;
3. it validates every table while the main process starts the analysis, then takes the analysis' cross-wave
   tables that are left, builds the Data Docs, and renders its part of the publication (the English report,
   the appendix workbook) beside the main process's.

On Linux, when nothing has started that a fork could copy mid-way (`_can_fork`: `tongxing run` from the
command line), the helper is forked: it starts with this process's imports, config and codebooks already in
memory, which a spawned helper pays about a second of start-up for. Otherwise (a notebook, another OS) it is
spawned and reads its own config and codebooks. Later work (the tables, the report parts) crosses by
pickling, skip logic as its expression. `ProcessPoolExecutor` raises `BrokenProcessPool` if the helper dies,
instead of hanging.
"""
from __future__ import annotations

import atexit
import collections
import concurrent.futures
import concurrent.futures.process
import gc
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import pandas as pd

try:
    import fcntl
except ImportError:  # (Windows)
    fcntl = None

_STATE: dict[str, Any] = {}


def _die_with_parent() -> None:
    """A run killed with SIGKILL cannot stop its helper; the kernel can (Linux PR_SET_PDEATHSIG), so an
    orphan never goes on writing into `.tongxing/` beside the next run."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != _PARENT[0]:  # the parent died before the signal was armed
        os._exit(1)


_PARENT = [os.getpid()]  # (in the helper, set from the initializer's arguments: see _adopt)


def _start(root: str, key: bytes, decisions: pd.DataFrame, parent: int) -> None:
    """The initializer of a spawned helper: it reads the run's config and codebooks itself."""
    # When the run shuts the pool down, skip the interpreter's own teardown (freeing GX's and pandas'
    # module objects one by one takes over a second, and the run waits for it). atexit handlers run after
    # multiprocessing has finished its own clean-up (queues, locks), so nothing is left undone.
    atexit.register(os._exit, 0)
    from pipelines.codebook import load_codebooks
    from pipelines.config import load_config
    from pipelines.collector import GC_THRESHOLDS

    gc.set_threshold(*GC_THRESHOLDS)  # (a forked helper inherits the run's)

    config = load_config(Path(root))
    _adopt(root, config, load_codebooks(config.questionnaire_dir), key, decisions, parent)


def _adopt(root: str, config, books: dict, key: bytes, decisions: pd.DataFrame, parent: int) -> None:
    """The initializer of a forked helper: the run's state is already here (copied by the fork, not pickled).
    A forked child leaves through `os._exit` after multiprocessing's clean-up, so no teardown is waited for."""
    _PARENT[0] = parent
    _die_with_parent()
    _STATE.update(root=Path(root), config=config, books=books, key=key, decisions=decisions)


# Modules whose presence means a fork could copy a half-held lock: pyarrow's I/O thread pools (a forked
# pool once hung for good after pyarrow had read files) and a notebook kernel's threads.
_FORK_UNSAFE = ("pyarrow.parquet", "pyarrow.csv", "pyarrow.dataset", "pyarrow.feather", "ipykernel")


def _can_fork() -> bool:
    """Fork only on Linux, from a process with no other Python thread (a progress display, a kernel) and
    none of `_FORK_UNSAFE` loaded: `tongxing run` from the command line, before its first table.
    (numpy's OpenBLAS threads are fork-safe: OpenBLAS re-initialises them in the child.)"""
    return (sys.platform.startswith("linux") and threading.active_count() == 1
            and not any(name in sys.modules for name in _FORK_UNSAFE))


def _noop() -> None:
    return None


def _keep(shared: tuple) -> None:
    """What the next jobs of `Helper.share` have in common, sent once."""
    _STATE["shared"] = shared


def _shared_job(there: Callable, job, with_shared: bool):
    return there(job, *_STATE["shared"]) if with_shared else there(job)


class _Pickled(bytes):
    """A result pickled in the helper, to be unpickled by the main process."""


def _table(chunk: tuple) -> list[_Pickled]:
    """Tables computed here (`run.compute_tables`: waves of one instrument), each pickled once: the same bytes
    go to the cache when its job names a cache key (`job[3]`; the helper stores its own tables, as the main
    process does), and back to the main process."""
    from pipelines.cache import Cache
    from pipelines.run import compute_tables
    results = compute_tables(_STATE["root"], _STATE["config"], _STATE["books"], _STATE["key"], _STATE["decisions"],
                             chunk)
    out = []
    for job, result in zip(chunk, results):
        _STATE.setdefault("frames", {})[(job[0], job[1])] = result.frame  # (kept here for validation)
        data = _Pickled(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        if len(job) > 3 and job[3] is not None:
            Cache(_STATE["root"]).put_pickled("table", job[3], data)
        out.append(data)
    return out


def _unpickled(result):
    """A helper's result as the main process uses it (`_Pickled` ones, alone or in a list, unpickled)."""
    if isinstance(result, _Pickled):
        return pickle.loads(result)
    if isinstance(result, list) and result and all(isinstance(item, _Pickled) for item in result):
        return [pickle.loads(item) for item in result]
    return result


def _timed(name: str, started: float) -> None:
    """Seconds of the helper's own stages, reported with the run's timings (`tongxing run -v`)."""
    seconds = _STATE.setdefault("seconds", {})
    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started


def _keep_frames(frames: dict) -> None:
    """Tables the main process computed, sent as soon as they are, for validation (`Helper.keep_frames`)."""
    _STATE.setdefault("frames", {}).update(frames)


def _validate(frames, keys: dict[str, str], use_cache: bool, order: list | None = None) -> pd.DataFrame:
    """The validation table of the run. GX's results stay in this process: it reads earlier ones from the
    cache (`keys`: instrument → input key) and stores new ones there itself, so the main process never
    unpickles a GX object (which would import GX there too: seconds). `order`, if given: every table of the
    run, whose frames are those this process already has (computed or kept here) and `frames`."""
    started = time.perf_counter()
    if order is not None:
        kept = _STATE.get("frames", {})
        frames = {k: frames[k] if k in frames else kept[k] for k in order}
    _STATE["frames"] = frames  # (for the analysis parts this process may take: `_analysis_part`)
    from pipelines.cache import Cache
    from pipelines.validate import validate_tables
    cache = Cache(_STATE["root"], enabled=use_cache)
    outcomes = _STATE.pop("early", {})  # (validated during the table stage: `_validate_early`)
    for instrument, key in keys.items():
        if instrument not in outcomes:
            outcomes[instrument] = _outcome(instrument, [k for k in frames if k[1] == instrument], key, cache)
    table, _, outcomes = validate_tables(frames, _STATE["books"], _STATE["config"], None, outcomes)
    _STATE["validated"] = (outcomes, table)
    _timed("validate", started)
    return table


def _outcome(instrument: str, tables: list[tuple[str, str]], key: str, cache) -> tuple:
    """One instrument's (table, GX result) as `validate.validate_tables` makes it: from the cache, or
    validated here (the tables' frames are this process's) and stored there."""
    outcome = cache.get("validation", key)
    if outcome is None:
        from pipelines.validate import _Session, validate_instrument
        frames = {k: _STATE["frames"][k] for k in tables}
        outcome = validate_instrument(frames, instrument, _STATE["books"], _STATE["config"],
                                      _STATE.setdefault("session", _Session()))
        cache.put("validation", key, outcome)
    return outcome


def _validate_early(instrument: str, tables: list[tuple[str, str]], key: str, use_cache: bool) -> None:
    """One instrument validated as soon as this process has all its tables (`Helper.map_tables`), while the
    other process goes on with the table stage: less is left for `_validate`, which the analysis would wait
    for."""
    started = time.perf_counter()
    from pipelines.cache import Cache
    _STATE.setdefault("early", {})[instrument] = _outcome(instrument, tables, key,
                                                          Cache(_STATE["root"], enabled=use_cache))
    _timed("validate", started)


def _analysis_part(name: str, reliability: pd.DataFrame) -> pd.DataFrame:
    """One of the analysis' cross-wave tables (`analyze.analysis_part`), from the tables validated here."""
    from pipelines.analyze import analysis_part
    return analysis_part(name, _STATE["frames"], _STATE["books"], _STATE["config"], reliability)


def _docs(docs_dir: Path) -> tuple[Path, dict]:
    started = time.perf_counter()
    _STATE.pop("frames", None)  # (the analysis is done: queued after it, `Helper.build_docs`)
    from pipelines.validate import docs_for
    path = docs_for(*_STATE.pop("validated"), docs_dir)
    _timed("data docs", started)
    return path, _STATE.pop("seconds", {})


def _import_report() -> None:
    """Import the report's modules (jinja2, the charts) while the helper waits for the main process to hand
    over its part of publishing (`report.builder.other_part`)."""
    import pipelines.report.builder  # noqa: F401


def _warm_up() -> None:
    """Import GX and build its context while the main process is still busy (seconds of imports)."""
    started = time.perf_counter()
    from pipelines.validate import _Session
    session = _STATE.setdefault("session", _Session())
    for book in _STATE["books"].values():
        session.suite(book, _STATE["config"])
    _timed("import GX", started)


# The interpreter's switch interval while a helper works (`Helper.__enter__`), and the capacity asked for the
# pipes results and jobs cross (`_larger_pipes`). Measured on this project's 2-core machine, a 13 MB result
# (a piece of estimates.csv) reached a busy main thread in 1.15 s by default; with both, in 0.1 s.
SWITCH_INTERVAL = 0.0005
PIPE_BYTES = 1 << 20


def _larger_pipes(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Larger buffers for the pool's pipes (Linux; elsewhere, or past the user's limit, they stay as they are).

    A pipe holds 64 KiB by default, so a result of several MB is read in hundreds of pieces, and the thread
    reading it waits for the GIL after each. The pipes are made with the pool, before its process starts."""
    setter = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if setter is None:
        return
    try:
        limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except (OSError, ValueError):
        limit = PIPE_BYTES
    for queue_ in (getattr(pool, "_result_queue", None), getattr(pool, "_call_queue", None)):
        reader = getattr(queue_, "_reader", None)
        if reader is None:
            continue
        try:
            fcntl.fcntl(reader.fileno(), setter, min(PIPE_BYTES, limit))
        except (OSError, ValueError):  # (over the user's pipe quota: a smaller pipe is only slower)
            pass


class Helper:
    """The helper process of one run. Use as a context manager; on an error it is terminated, not awaited."""

    def __init__(self, root: Path, config, books: dict, key: bytes, decisions: pd.DataFrame,
                 fork: bool | None = None):
        """`config` and `books` are this process's (used here if the helper dies; a forked helper inherits
        them; a spawned one reads its own: the spawn arguments cross a pipe the new process reads only after
        importing the caller's script, and a script without a `__main__` guard fails there, leaving a large
        write blocked for good); `key` and `decisions` are the run's table inputs, read once and shared with
        `process_tables`. `fork`: None chooses (`_can_fork`), True/False forces."""
        self.key, self.decisions = key, decisions
        self.forked = _can_fork() if fork is None else fork
        if self.forked:
            context, init, args = "fork", _adopt, (str(root), config, books, key, decisions, os.getpid())
        else:
            context, init, args = "spawn", _start, (str(root), key, decisions, os.getpid())
        self._pool = concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context(context), initializer=init, initargs=args)
        _larger_pipes(self._pool)
        self._switch_interval: float | None = None
        self._here = dict(root=Path(root), config=config, books=books, key=key, decisions=decisions)
        self._validation: Callable[[], pd.DataFrame] | None = None  # (waiters: see `submit`)
        self._docs: Callable[[], tuple] | None = None
        self.broken = False  # the helper died (or could not start): its work is done here instead
        self.seconds: dict[str, float] = {}  # the helper's own stages (validation, Data Docs), once known
        self._warming = False
        self._last: concurrent.futures.Future | None = None  # the work last queued in the helper
        self._held: set = set()  # (wave, instrument) of the tables the helper has: computed there, or kept
        self._done_there: set[int] = set()  # the jobs of the last `share` that the helper did
        if self.forked:  # fork now, before this process starts any thread (the pool's own, a progress bar)
            sys.stdout.flush()
            sys.stderr.flush()
            with warnings.catch_warnings():  # (Python ≥ 3.12 warns about OpenBLAS's threads: see _can_fork)
                warnings.simplefilter("ignore", DeprecationWarning)
                self._submit(_noop)

    def _result(self, future: concurrent.futures.Future, fn: Callable, *args):
        """The helper's result, or — if the helper is gone — the same work done in this process: a run
        never fails because its helper did (a script without a `__main__` guard, a killed process)."""
        try:
            return future.result()
        except concurrent.futures.process.BrokenProcessPool:
            self._mark_broken()
            return fn(*args)

    def _mark_broken(self) -> None:
        if not self.broken:
            self.broken = True
            _STATE.update(self._here)  # the helper's functions now run here, on this process's state

    def _submit(self, fn: Callable, *args) -> concurrent.futures.Future | None:
        """`fn(*args)` queued in the helper, or None when the helper is gone (the caller does it here)."""
        if not self.broken:
            try:
                self._last = self._pool.submit(fn, *args)
                return self._last
            except concurrent.futures.process.BrokenProcessPool:
                self._mark_broken()
        return None

    def submit(self, fn: Callable, *args) -> Callable[[], Any]:
        """Run `fn(*args)` in the helper (after its queued work); returns a function that waits for the
        result, or computes it here if the helper is gone. `fn` must be a module-level function."""
        future = self._submit(fn, *args)
        return lambda: fn(*args) if future is None else self._result(future, fn, *args)

    def warm_up(self) -> None:
        """Import GX in the helper now (once): its seconds overlap this process's tables, and validation
        follows the tables. Called whenever some table is computed, so its validation is not cached."""
        if not self._warming:
            self._warming = True
            self._submit(_warm_up)

    def map_tables(self, jobs: list, compute: Callable, validation: dict | None = None,
                   use_cache: bool = True) -> list:
        """`compute(chunk)` for every chunk of (wave, instrument) jobs here, `_table(chunk)` in the helper
        (`share`): given the largest chunks first, the last ones are small, so neither process waits long for
        the other at the end. The helper's first chunk waits for its GX import (`warm_up`).

        `validation` ({instrument: (its tables, its validation key)}): the helper validates an instrument
        (`_validate_early`) whenever it is free and has all its tables, before it takes the next chunk; this
        process meanwhile takes more chunks. `validate` is left with the instruments that were not ready."""
        self.warm_up()
        pending = dict(validation or {})

        def ready(taken: set[int]):
            # (`_held` grows in this process's thread: a set's copy and update are each one step under the GIL)
            held = self._held.copy() | {(job[0], job[1]) for i in taken for job in jobs[i]}
            for instrument, (tables, key) in pending.items():
                if held.issuperset(tables):
                    del pending[instrument]
                    return _validate_early, instrument, tables, key, use_cache
            return None

        results = self.share(jobs, compute, _table, ready=ready if pending else None)
        for i in self._done_there:  # (the helper keeps these tables' frames for validation)
            self._held.update((job[0], job[1]) for job in jobs[i])
        return results

    def share(self, jobs: list, here: Callable, there: Callable, *shared, first: Callable | None = None,
              ready: Callable[[set[int]], tuple | None] | None = None) -> list:
        """Every job done once, by whichever process is free: `here(job)` in this process, `there(job, *shared)`
        in the helper (a module-level function). Both take the next job nobody has taken from the front of the
        list, the helper as soon as the work queued for it before is done. `shared` goes to the helper once,
        not with every job; `first()` is this process's own work, done before it takes any job. `ready(taken)`,
        if given, is asked each time the helper is free, with the jobs it has been handed so far: work only
        the helper does, `(fn, *args)`, which it then does before taking a job, or None.

        Jobs are handed to the helper one at a time by a feeder thread, woken by the helper's finished
        futures: a job queued in a process pool early would be reserved by a helper that is still busy."""
        lock = threading.Lock()
        left = collections.deque(range(len(jobs)))
        taken: dict[int, concurrent.futures.Future] = {}
        free: queue.SimpleQueue = queue.SimpleQueue()  # one item per time the helper is free; None: stop
        if shared:
            self._submit(_keep, shared)

        def feed() -> None:
            while free.get() is not None:
                with lock:
                    if not left or self.broken:
                        return
                    extra = ready(set(taken)) if ready is not None else None
                    if extra is not None:
                        future = self._submit(*extra)
                        if future is None:
                            return
                    else:
                        i = left.popleft()
                        future = self._submit(_shared_job, there, jobs[i], bool(shared))
                        if future is None:  # the helper is gone: this process takes the job back
                            left.appendleft(i)
                            return
                        taken[i] = future
                future.add_done_callback(lambda _: free.put(True))

        feeder = threading.Thread(target=feed, name="tongxing-feeder", daemon=True)
        feeder.start()
        if self._last is None or self.broken:
            free.put(True)
        else:
            self._last.add_done_callback(lambda _: free.put(True))
        results = {}
        try:
            if first is not None:
                first()
            while True:
                with lock:
                    if not left:
                        break
                    i = left.popleft()
                results[i] = here(jobs[i])
        finally:
            free.put(None)
            feeder.join()
        self._done_there = set()
        for i, future in taken.items():
            try:
                results[i] = _unpickled(future.result())
                self._done_there.add(i)
            except concurrent.futures.process.BrokenProcessPool:
                self._mark_broken()
                results[i] = here(jobs[i])
        return [results[i] for i in range(len(jobs))]

    def keep_frames(self, frames: dict) -> None:
        """Send tables this process computed to the helper now, for `validate`: it then starts validating as
        soon as it is free, instead of waiting for every table to be sent after the stage."""
        if self._submit(_keep_frames, frames) is not None:
            self._held.update(frames)

    def validate(self, frames, keys: dict[str, str], use_cache: bool = True) -> None:
        """Validate the run's tables (`validation()` waits for the table). The helper already has the tables
        it computed and those sent by `keep_frames`; only the others (from the cache) are sent. It keeps
        them, for the analysis parts it takes (`_analysis_part`)."""
        sent = {k: frame for k, frame in frames.items() if k not in self._held}
        future = self._submit(_validate, sent, keys, use_cache, list(frames))
        self._validation = lambda: _validate(frames, keys, use_cache) if future is None else \
            self._result(future, _validate, frames, keys, use_cache)

    def build_docs(self, docs_dir: Path) -> None:
        """Build the Data Docs after the work queued so far (`docs()` waits for them): they are needed only at
        the end of publishing, so the analysis' shared parts go first."""
        self._docs = self.submit(_docs, docs_dir)
        self._submit(_import_report)

    def validation(self) -> pd.DataFrame:
        return self._validation()

    def docs(self) -> Path:
        path, seconds = self._docs()
        self.seconds.update(seconds)
        return path

    def __enter__(self):
        # This process reads the helper's results in a thread of the pool's (and hands it jobs in another) while
        # its main thread computes: each such thread waits up to the interpreter's switch interval (5 ms) for
        # the GIL after every read it makes, so a 13 MB result took ~1 s to arrive, and the helper stood idle.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL))
        return self

    def __exit__(self, *exc):
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
        if exc[0] is not None:  # the run failed: do not wait for work nobody will read
            for process in list((getattr(self._pool, "_processes", None) or {}).values()):
                process.terminate()
            if sys.version_info < (3, 11, 5):
                # Before 3.11.5 (gh-94777) the pool's clean-up waits for its queue's feeder thread, which may be
                # stuck writing work the helper never read (tables sent while it was busy) into a pipe this
                # process holds open too: the interpreter then hangs on exit. Without its reader, the write fails.
                reader = getattr(getattr(self._pool, "_call_queue", None), "_reader", None)
                if reader is not None:
                    reader.close()
        self._pool.shutdown(wait=exc[0] is None, cancel_futures=True)
        return False
