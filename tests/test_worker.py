"""The run's helper process: a helper that dies never fails the run (its work is done in the run's process)."""
import os
import signal
import time

import pandas as pd
import pytest

from pipelines.codebook import load_codebooks
from pipelines.config import load_config
from pipelines.worker import Helper


def _double(job):
    return job * 2


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "spawned"])
def test_a_dead_helper_leaves_the_work_to_this_process(demo_root, fork):
    config = load_config(demo_root)
    with Helper(demo_root, config, load_codebooks(config.questionnaire_dir), b"test-key", pd.DataFrame(),
                fork=fork) as helper:
        assert helper.forked is fork
        helper._pool.submit(int).result(timeout=120)  # the helper is up
        for process in list(helper._pool._processes.values()):
            os.kill(process.pid, signal.SIGKILL)
        time.sleep(1)
        results = helper.map_tables([1, 2, 3], _double)
        assert results == [2, 4, 6]
        assert helper.broken


def _helper_state(_):
    from pipelines.worker import _STATE
    return sorted(_STATE["books"]), [w.id for w in _STATE["config"].waves]


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "spawned"])
def test_the_helper_holds_the_run_s_config_and_codebooks(demo_root, fork):
    """A forked helper inherits them, a spawned one reads them itself: either way it computes with the same."""
    config = load_config(demo_root)
    books = load_codebooks(config.questionnaire_dir)
    with Helper(demo_root, config, books, b"test-key", pd.DataFrame(), fork=fork) as helper:
        names, waves = helper.submit(_helper_state, None)()
        assert names == sorted(books) and waves == [w.id for w in config.waves]
        assert not helper.broken


def test_tables_computed_by_the_helper_are_cached_there_and_arrive_whole(demo_root):
    """The helper pickles each table of a chunk once: the bytes it stores in the cache are the bytes it hands
    back, and they unpickle to what this process computes for each job alone (the chunk's waves are cleaned
    together there)."""
    import pickle

    from pipelines.cache import Cache
    from pipelines.run import compute_keys, compute_table, plan
    from pipelines.worker import _table

    state = plan(demo_root, None)
    smallest = min(compute_keys(state), key=lambda j: sum(f.stat().st_size for f in j[2].iterdir()))
    chunk = tuple((w, i, str(f), f"test-helper-cache-entry-{w}") for w, i, f in compute_keys(state)
                  if i == smallest[1])[:2]
    assert len(chunk) == 2
    cache = Cache(demo_root)
    try:
        with Helper(demo_root, state.config, state.books, b"test-key", pd.DataFrame()) as helper:
            data = helper.submit(_table, chunk)()
        assert len(data) == 2
        for job, one in zip(chunk, data):
            assert isinstance(one, bytes) and cache._path("table", job[3]).read_bytes() == one
            there = pickle.loads(one)
            here = compute_table(demo_root, state.config, state.books, b"test-key", pd.DataFrame(), job)
            assert (there.wave, there.instrument) == (job[0], job[1])
            pd.testing.assert_frame_equal(there.frame, here.frame)
            assert there.parquet == here.parquet and there.clean.counts == here.clean.counts
            assert there.analysis.estimates.equals(here.analysis.estimates)
    finally:
        for job in chunk:
            cache._path("table", job[3]).unlink(missing_ok=True)


def test_a_run_collects_less_often_and_gives_the_caller_s_settings_back():
    import gc

    from pipelines.collector import GC_THRESHOLDS, fewer_collections

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with fewer_collections():
        assert gc.get_threshold() == GC_THRESHOLDS and gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen


def test_what_a_run_made_sets_off_no_collection_once_the_caller_s_settings_are_back():
    """A run's own objects (here 150,000 lists, far past the default threshold of 700) join the older ones
    on the way out, instead of being walked by a collection as soon as the caller's thresholds are back.
    (In a fresh interpreter, where nothing else is frozen: objects a caller froze stay frozen, and then the
    run leaves the collector as it would.)"""
    import subprocess
    import sys

    code = (
        "import gc\n"
        "from pipelines.collector import fewer_collections\n"
        "started, before = [], gc.get_threshold()\n"
        "gc.callbacks.append(lambda phase, info: started.append(1) if phase == 'start' else None)\n"
        "with fewer_collections():\n"
        "    made = [[i] for i in range(150_000)]\n"
        "    during = len(started)\n"
        "more = [[] for _ in range(100)]   # (allocations that would set a collection off)\n"
        "print(during, len(started), gc.get_freeze_count(), gc.get_threshold() == before)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "0", "0", "True"]


def _times(job, factor):
    return job * factor


def _sleep(seconds):
    time.sleep(seconds)


def test_shared_jobs_are_each_done_once_by_whichever_process_is_free(demo_root):
    """While the helper is busy, this process does every job itself (after its own `first` work); once the
    helper is free it takes jobs too, and gets their common arguments (sent once)."""
    config = load_config(demo_root)
    books = load_codebooks(config.questionnaire_dir)
    with Helper(demo_root, config, books, b"test-key", pd.DataFrame()) as helper:
        here, order = [], []
        helper.submit(_sleep, 5)  # the helper is busy with earlier work

        def mine(job):
            here.append(job)
            return job * 10

        assert helper.share([1, 2, 3], mine, _times, 10, first=lambda: order.append("first")) == [10, 20, 30]
        assert order == ["first"] and here == [1, 2, 3]
        time.sleep(5)
        here.clear()

        def slow(job):
            time.sleep(0.2)
            return mine(job)

        assert helper.share(list(range(12)), slow, _times, 10) == [j * 10 for j in range(12)]
        assert 0 < len(here) < 12  # both processes took jobs


def test_the_helper_validates_the_tables_it_was_sent_early_with_the_rest(demo_root):
    """Tables sent as soon as they are computed (`keep_frames`) are not sent again for validation, and the
    validation table is the one the helper gives when every table is sent with the request."""
    from pipelines.run import compute_keys, compute_tables, plan

    state = plan(demo_root, None)
    jobs = tuple((w, i, str(f), None) for w, i, f in compute_keys(state) if i == "activity")
    results = compute_tables(demo_root, state.config, state.books, b"test-key", pd.DataFrame(), jobs)
    frames = {(job[0], job[1]): result.frame for job, result in zip(jobs, results)}
    early = dict(list(frames.items())[:2])
    tables = []
    for sent_early in (early, {}):
        with Helper(demo_root, state.config, state.books, b"test-key", pd.DataFrame()) as helper:
            helper.keep_frames(sent_early)
            helper.validate(frames, {"activity": "unused"}, use_cache=False)
            tables.append(helper.validation())
            assert helper._held == set(sent_early)
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert len(tables[0]) and set(tables[0]["wave"]) == {wave for wave, _ in frames}


def test_the_last_jobs_of_the_table_stage_are_single_small_tables(tmp_path):
    """Largest first; the smallest chunks, together at most `LAST_SHARE` of the raw bytes, become one job per
    table, so the two processes end the stage close together."""
    from pipelines.run import _largest_first

    def folder(name, size):
        path = tmp_path / name
        path.mkdir()
        (path / "export.csv").write_bytes(b"x" * size)
        return str(path)

    big = tuple(("w", "parent", folder(f"p{i}", 300), None) for i in range(3))
    middle = tuple(("w", "child", folder(f"c{i}", 200), None) for i in range(2))
    small = tuple(("w", "activity", folder(f"a{i}", size), None) for i, size in enumerate((40, 60)))
    order = _largest_first([small, middle, big])  # bytes 900, 400, 100: the last 10 % split
    assert order == [big, middle, (small[1],), (small[0],)]


def test_analysis_parts_taken_by_the_helper_are_the_ones_this_process_computes(demo_root):
    """`analyze(state, helper.share)`: the helper takes cross-wave tables while this process does its own
    part, and every table of the analysis is the one a single process computes."""
    from pipelines.analyze import SHARED_PARTS, analyze
    from pipelines.cache import Cache
    from pipelines.run import plan, process_tables

    state = plan(demo_root, None)
    state.cache = Cache(demo_root, enabled=False)
    process_tables(state)
    alone = analyze(state)
    with Helper(demo_root, state.config, state.books, b"test-key", pd.DataFrame()) as helper:
        helper.keep_frames({k: t.frame for k, t in state.tables.items()})
        shared = analyze(state, helper.share)
        assert helper._done_there and not helper.broken  # (the helper took at least one part)
    for name in (*SHARED_PARTS, "estimates", "needs_priority", "services", "reliability"):
        pd.testing.assert_frame_equal(getattr(shared, name), getattr(alone, name), check_exact=True)


def _mark(text):
    from pipelines.worker import _STATE
    _STATE.setdefault("marks", []).append(text)


def _marks(_):
    from pipelines.worker import _STATE
    return _STATE.pop("marks", [])


def test_work_only_the_helper_does_goes_before_its_next_job_when_ready(demo_root):
    """`share(..., ready=...)`: asked each time the helper is free, with the jobs handed to it so far; what it
    returns is done there before the next job, and every job is still done once."""
    config = load_config(demo_root)
    with Helper(demo_root, config, load_codebooks(config.questionnaire_dir), b"test-key", pd.DataFrame()) as helper:
        asked = []

        def ready(taken):
            asked.append(set(taken))
            return (_mark, sorted(taken)) if len(asked) == 2 else None

        def slow(job):
            time.sleep(0.2)
            return job * 10

        assert helper.share(list(range(8)), slow, _times, 10, ready=ready) == [j * 10 for j in range(8)]
        marks = helper.submit(_marks, None)()
        assert asked[0] == set() and len(asked[1]) == 1 and marks == [sorted(asked[1])]
        assert not helper.broken


def test_an_instrument_validated_during_the_table_stage_is_not_validated_again(demo_root):
    """`_validate_early` (the helper has all of an instrument's tables before the stage ends) makes the
    outcome `validate` then uses as it is: the validation table is the one validating everything at the end
    gives."""
    from pipelines.run import compute_keys, compute_tables, plan
    from pipelines.worker import _validate_early

    state = plan(demo_root, None)
    frames = {}
    for instrument in ("activity", "community"):
        jobs = tuple((w, i, str(f), None) for w, i, f in compute_keys(state) if i == instrument)[:3]
        results = compute_tables(demo_root, state.config, state.books, b"test-key", pd.DataFrame(), jobs)
        frames.update({(job[0], job[1]): result.frame for job, result in zip(jobs, results)})
    keys = {"activity": "unused-a", "community": "unused-c"}
    tables = []
    for early in (True, False):
        with Helper(demo_root, state.config, state.books, b"test-key", pd.DataFrame()) as helper:
            helper.keep_frames(frames)
            if early:
                activity = [k for k in frames if k[1] == "activity"]
                helper.submit(_validate_early, "activity", activity, keys["activity"], False)()
                assert helper.submit(_early_outcomes, None)() == ["activity"]
            helper.validate(frames, keys, use_cache=False)
            tables.append(helper.validation())
            assert helper.submit(_early_outcomes, None)() == []  # (used up by the validation)
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert set(tables[0]["instrument"]) == {"activity", "community"}


def _early_outcomes(_):
    from pipelines.worker import _STATE
    return sorted(_STATE.get("early", {}))


FAILING_RUN = """
import sys, time
import pandas as pd
from pipelines.codebook import load_codebooks
from pipelines.config import load_config
from pipelines.worker import Helper
root = sys.argv[1]
config = load_config(root)
try:
    with Helper(root, config, load_codebooks(config.questionnaire_dir), b"test-key", pd.DataFrame()) as helper:
        helper.submit(time.sleep, 30)  # the helper is busy: what is sent next waits in the pipe
        time.sleep(1)
        helper.keep_frames({("w", "i"): pd.DataFrame({"x": range(2_000_000)})})  # far more than a pipe holds
        time.sleep(1)
        raise ValueError("bad input")
except ValueError:
    print("failed as expected", flush=True)
"""


def test_a_failed_run_exits_at_once_though_work_for_the_helper_was_still_being_sent(demo_root):
    """A run that fails while a large table is still on its way to a busy helper ends at once instead of
    hanging on exit (on Python before 3.11.5 the pool's clean-up waited for that send: gh-94777)."""
    import subprocess
    import sys

    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", FAILING_RUN, str(demo_root)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "failed as expected" in out.stdout, out.stderr
    assert time.perf_counter() - started < 25  # (not the helper's 30 s of sleep)


def _large_result(size):
    return b"x" * size


@pytest.mark.skipif(not hasattr(__import__("fcntl"), "F_GETPIPE_SZ"), reason="pipe capacity is Linux-only")
def test_large_results_cross_a_larger_pipe_and_the_switch_interval_comes_back(demo_root):
    """Results of several MB (a report, a piece of estimates.csv) cross the pool's pipes in 1 MiB pieces, not
    64 KiB ones, and this process's threads get the GIL sooner while the helper works (both measured in
    `pipelines.worker`: a 13 MB result reached a busy main thread in 1.15 s before, 0.1 s after)."""
    import fcntl
    import sys
    from pathlib import Path

    from pipelines.worker import PIPE_BYTES, SWITCH_INTERVAL

    config = load_config(demo_root)
    before = sys.getswitchinterval()
    limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    with Helper(demo_root, config, load_codebooks(config.questionnaire_dir), b"test-key", pd.DataFrame()) as helper:
        assert sys.getswitchinterval() == min(before, SWITCH_INTERVAL)
        for queue_ in (helper._pool._result_queue, helper._pool._call_queue):
            assert fcntl.fcntl(queue_._reader.fileno(), fcntl.F_GETPIPE_SZ) == min(PIPE_BYTES, limit)
        assert len(helper.submit(_large_result, 13_000_000)()) == 13_000_000
    assert sys.getswitchinterval() == before


def test_the_command_imports_the_pipeline_without_collections_and_leaves_the_collector_on():
    """`tongxing run` imports pandas and the pipeline with the collector off (Python's default thresholds
    would collect ~160 times meanwhile); it is on again afterwards, nothing is left frozen, and the imported
    objects set off no collection at once."""
    import subprocess
    import sys

    code = (
        "import gc\n"
        "started = []\n"
        "gc.callbacks.append(lambda phase, info: started.append(1) if phase == 'start' else None)\n"
        "from pipelines.collector import imported\n"
        "before = len(started)\n"
        "runner = imported('pipelines.run')\n"
        "during = len(started) - before\n"
        "more = [[] for _ in range(100)]\n"
        "print(runner.__name__, during, len(started) - before, gc.isenabled(), gc.get_freeze_count())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["pipelines.run", "0", "0", "True", "0"]


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False


@pytest.mark.skipif(not _glibc(), reason="the malloc options are glibc's")
def test_the_command_keeps_freed_memory_so_large_buffers_fault_no_pages_again():
    """After `_keep_freed_memory` a freed 50 MB buffer's pages serve the next one (glibc would otherwise map
    each afresh and fault in its ~12,000 pages again): the minor page faults of five more are counted."""
    import subprocess
    import sys

    code = (
        "import resource\n"
        "from pipelines.cli import _keep_freed_memory\n"
        "_keep_freed_memory()\n"
        "b = b'x' * 50_000_000; del b\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(5):\n"
        "    b = b'x' * 50_000_000; del b\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(out) < 1_000   # (five buffers mapped afresh: ~61,000)
