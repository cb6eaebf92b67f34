"""Print the Python interpreter `make` builds .venv from (the Makefile's PYTHON; `make PYTHON=...` skips this).

One CPython version can run this pipeline a sixth faster or slower by how it was compiled: an operating
system's own python3.X is usually built with profile-guided and link-time optimisation, while pyenv and
other source builds are not unless asked to be. On the development machine the OS's python3.11 took 16.2 s
of CPU for a cold demo run against 18.7 s for pyenv's python3.11 (same packages, same code).

So the candidates are `python3` (the one running this script) and the OS's interpreter of the same version,
if it can make a virtual environment with pip; each runs a short pure-Python loop a few times, alternately,
and the quicker by at least 5 % is printed. Anything unexpected prints `python3`'s own path.
"""
from __future__ import annotations

import os
import subprocess
import sys

# dict and attribute work, as in the pipeline's pure-Python parts; prints its best time of 3
PROBE = """
import time
def work():
    d = {}
    for i in range(150_000):
        d[i % 997] = d.get(i % 997, 0) + i
    return len(d)
best = min((lambda t: (work(), time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(3))
print(best)
"""
ROUNDS = 3
MARGIN = 0.95


def candidates() -> list[str]:
    here = sys.executable
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    found = [here]
    for path in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if not os.path.exists(path) or os.path.realpath(path) in map(os.path.realpath, found):
            continue
        check = f"import sys, ensurepip, venv; assert sys.version_info[:2] == ({version.replace('.', ', ')})"
        if subprocess.run([path, "-c", check], capture_output=True, timeout=60).returncode == 0:
            found.append(path)
    return found


def seconds(python: str) -> float:
    out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    return float(out.stdout.strip())


def main() -> str:
    found = candidates()
    if len(found) == 1:
        return found[0]
    best = dict.fromkeys(found, float("inf"))
    for _ in range(ROUNDS):  # (alternately: the machine's speed drifts)
        for python in found:
            best[python] = min(best[python], seconds(python))
    quickest = min(found, key=best.get)
    return quickest if best[quickest] < MARGIN * best[found[0]] else found[0]


if __name__ == "__main__":
    try:
        print(main())
    except Exception:  # (never stop an install: the interpreter that runs this will do)
        print(sys.executable)
