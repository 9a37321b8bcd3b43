"""Running the ``embedcache`` command line from a suite: the console script; a run's wall time and peak RSS.

Each run is a fresh process, as a user runs it: its time includes the interpreter, the imports and loading
the model.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import torch


def cli_executable() -> Path:
    """The ``embedcache`` console script of this environment: what a user runs."""
    script = Path(sys.executable).with_name("embedcache")
    if not script.is_file():
        raise FileNotFoundError(f"{script} not found; install the package (pip install -e .) to time the CLI")
    return script


# The peak RSS a child reports includes what it had when forked (Linux keeps the high-water mark across exec),
# so a child of this large process would report this process's size: a small interpreter starts the command
# and reads its children's peak instead.
_MEASURE = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)


def run_cli(arguments: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS bytes (the largest process of its tree) of one ``embedcache`` command."""
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _MEASURE, str(cli_executable()), *arguments], env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"embedcache {' '.join(arguments)} exited with {result.returncode}")
    return seconds, int(result.stdout.split()[-1]) * 1024
