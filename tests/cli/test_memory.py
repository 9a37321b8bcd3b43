"""predict streams: its peak memory does not grow with the size of the input."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

# Each measured run is a child forked from one warm interpreter: both runs start from the same imported state
# and only one import (seconds) is paid. RUSAGE_CHILDREN's ru_maxrss is the peak of the largest child so far.
DRIVER = """
import os, resource, sys
from embedcache.cli import main

model, *inputs = sys.argv[1:]
for path in inputs:
    pid = os.fork()
    if pid == 0:
        argv = ["predict", "--model", model, path, "--output", path + ".conll", "--chunk-size", "50", "-q"]
        os._exit(main(argv))
    _, status = os.waitpid(pid, 0)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(os.waitstatus_to_exitcode(status), peak_kib, flush=True)
"""
SLACK_KIB = 8 * 1024  # holding the 4x input's results would take ~23 MB more (measured with one chunk)


def generated_text(lines: int) -> str:
    rng = random.Random(0)
    words = ["the", "a", "cat", "dog", "sat", "on", "Apple", "is", "looking", "at", "buying", "U.K.",
             "startup", "for", "$1", "billion", "Paris", "went"]  # fmt: skip
    return "".join(
        " ".join(rng.choice(words) for _ in range(rng.randint(8, 16))) + " .\n" for _ in range(lines)
    )


@pytest.mark.slow
@pytest.mark.skipif(
    not hasattr(os, "fork") or sys.platform == "darwin", reason="needs fork and ru_maxrss in KiB"
)
def test_peak_rss_does_not_grow_with_the_input(ner_model, tmp_path: Path):
    text = generated_text(1000)  # 60 kB; 4x: 240 kB, 4,000 documents in 80 chunks
    small, large = tmp_path / "x1.txt", tmp_path / "x4.txt"
    small.write_text(text, encoding="utf-8")
    large.write_text(text * 4, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, str(ner_model), str(small), str(large)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (small_code, small_peak_kib), (large_code, large_peak_kib) = [
        map(int, line.split()) for line in result.stdout.splitlines()
    ]
    assert (small_code, large_code) == (0, 0)
    assert large_peak_kib <= small_peak_kib + SLACK_KIB
    sentences = [Path(f"{path}.conll").read_text(encoding="utf-8").count("\n\n") for path in (small, large)]
    assert sentences[1] == 4 * sentences[0] >= 1000
