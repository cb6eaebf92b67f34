"""Progress output: a rich bar on a terminal, plain lines with --verbose, nothing otherwise."""
import io

from pipelines.progress import Progress, stage


def _run(progress):
    stage(progress, "ingest", 2)
    progress("2025Q1/parent: 300 read, 280 kept")
    progress("2025Q1/child: 250 read, 240 kept")
    stage(progress, "publish")
    progress.close()


def test_quiet_when_not_a_terminal():
    out = io.StringIO()
    p = Progress(verbose=False, stream=out, interactive=False)
    assert not p.active
    _run(p)
    assert out.getvalue() == ""


def test_verbose_prints_plain_lines_for_logs():
    out = io.StringIO()
    _run(Progress(verbose=True, stream=out, interactive=False))
    assert out.getvalue() == "  2025Q1/parent: 300 read, 280 kept\n  2025Q1/child: 250 read, 240 kept\n"
    assert "\x1b" not in out.getvalue()


def test_terminal_gets_a_bar_that_is_cleared_afterwards():
    out = io.StringIO()
    p = Progress(verbose=False, stream=out, interactive=True)
    assert p.active
    _run(p)
    text = out.getvalue()
    assert "\x1b[" in text  # drawn with control sequences, then erased (transient)
    assert p._bar is None
