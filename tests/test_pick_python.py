"""tools/pick_python.py, which chooses the interpreter `make` builds .venv from."""
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "pick_python.py"


def test_the_interpreter_chosen_is_of_the_same_python_version_and_can_make_a_venv():
    """Whatever build it picks (this one, or the OS's of the same version), `make` gets an interpreter of
    python3's own major.minor version, with venv and ensurepip, on one line."""
    out = subprocess.run([sys.executable, str(TOOL)], capture_output=True, text=True, timeout=300, check=True)
    chosen = out.stdout.strip()
    assert "\n" not in chosen and Path(chosen).exists()
    check = subprocess.run([chosen, "-c", "import sys, venv, ensurepip; print(*sys.version_info[:2])"],
                           capture_output=True, text=True, check=True)
    assert check.stdout.split() == [str(v) for v in sys.version_info[:2]]
