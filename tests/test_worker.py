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
