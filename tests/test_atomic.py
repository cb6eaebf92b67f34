"""Publishing is atomic: a killed run leaves the last publication intact; two runs never interleave."""
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from pipelines.io import remove_stale_stages, staged_directory

pytestmark = pytest.mark.slow


def test_staged_directory_swaps_whole(tmp_path):
    target = tmp_path / "2025Q4"
    target.mkdir()
    (target / "report.html").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_directory(target) as stage:
            (stage / "report.html").write_text("half")
            raise RuntimeError("interrupted")
    assert (target / "report.html").read_text() == "old"
    assert not list(tmp_path.glob(".2025Q4.new-*"))
    with staged_directory(target) as stage:
        (stage / "report.html").write_text("new")
    assert (target / "report.html").read_text() == "new"


def test_swap_cut_between_renames_is_recovered(tmp_path):
    (tmp_path / ".2025Q4.old-abc").mkdir()  # the old publication, moved aside; the new one never arrived
    (tmp_path / ".2025Q4.old-abc" / "report.html").write_text("old")
    (tmp_path / ".2025Q3.new-def").mkdir()  # a half-written stage
    remove_stale_stages(tmp_path)
    assert (tmp_path / "2025Q4" / "report.html").read_text() == "old"
    assert not list(tmp_path.glob(".*"))


def _helpers_of(pid: int) -> set[int]:
    """Child processes of `pid` (the run's spawned helper)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _env():
    return dict(os.environ, TONGXING_LINKAGE_KEY="test-key-not-secret")


def test_killed_run_leaves_publication_and_next_run_recovers(run_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(run_root, root)
    published = {p: p.read_bytes() for p in (root / "reports").rglob("*") if p.is_file()}
    (root / "config" / "decisions.csv").write_text(  # any change: the next run recomputes every table
        "response_id,action,column,value,reason\nnone,drop,,,测试中断\n", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "pipelines", "run", "--root", str(root)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(8)
    helpers = _helpers_of(proc.pid)
    assert helpers, "the run should have started its helper process by now"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1)
    assert not [p for p in helpers if _alive(p)], "the helper outlived the killed run"
    assert {p: p.read_bytes() for p in (root / "reports").rglob("*") if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(root / "reports").parts)} == published
    result = subprocess.run([sys.executable, "-m", "pipelines", "run", "--root", str(root)], env=_env(),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert not list((root / "reports").glob(".*.new-*")) and not list((root / "data_clean").glob(".*.new-*"))
    assert (root / "reports" / "2025Q4" / "report.html").read_bytes() == published[root / "reports" / "2025Q4" / "report.html"]


def test_second_run_on_the_same_root_is_refused(run_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(run_root, root)
    lock = root / ".tongxing" / "run.lock"
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = subprocess.run([sys.executable, "-m", "pipelines", "run", "--root", str(root)], env=_env(),
                                capture_output=True, text=True)
    assert result.returncode == 2
    assert "another tongxing run is using this root" in result.stderr
