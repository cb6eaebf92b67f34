"""The run's helper process: a helper that dies never fails the run (its work is done in the run's process)."""
import os
import signal
import time

import pandas as pd

from pipelines.codebook import load_codebooks
from pipelines.config import load_config
from pipelines.worker import Helper


def _double(job):
    return job * 2


def test_a_dead_helper_leaves_the_work_to_this_process(demo_root):
    config = load_config(demo_root)
    with Helper(demo_root, config, load_codebooks(config.questionnaire_dir), b"test-key", pd.DataFrame()) as helper:
        helper._pool.submit(int).result(timeout=120)  # the helper is up
        for process in list(helper._pool._processes.values()):
            os.kill(process.pid, signal.SIGKILL)
        time.sleep(1)
        results = helper.map_tables([1, 2, 3], _double)
        assert results == [2, 4, 6]
        assert helper.broken
