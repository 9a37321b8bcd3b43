"""Suite ``startup``: how soon the command line answers, against ``python -c "import torch"`` in the same run.

Each command runs as a fresh process, as a user runs it: the interpreter, the imports, loading the model.
All commands take turns within a round (the order rotates from round to round, so none is always the one that
finds the file cache cold), after one untimed round; each run's wall time is read around the process and its
CPU time (user + system) from the operating system's accounting of the finished child. With ``--baseline
DIR`` the same commands are also run from another checkout (e.g. ``git worktree add /tmp/before main``), so
old and new figures come from one machine in one run.
"""

from __future__ import annotations

import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from bench.harness import REPO_ROOT, BenchConfig, Suite
from bench.suites.startup_results import Command, Measurement, StartupPlan, StartupRun, render

log = logging.getLogger(__name__)

MIN_ROUNDS = 5
QUICK_ROUNDS = 2
# What the `embedcache` console script does, with the checkout to import from as the first argument: the
# same entry point for this checkout and a baseline one.
LAUNCHER = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from embedcache.cli import main; sys.exit(main())"
)
SENTENCE = "Apple is looking at buying a U.K. startup for $1 billion.\n"


def embedcache_command(root: Path, args: Sequence[str]) -> list[str]:
    """``embedcache ARGS`` as the checkout at ``root`` runs it."""
    return [sys.executable, "-c", LAUNCHER, str(root), *args]


def commands(roots: dict[str, Path], one_sentence: Path, device: str) -> list[Command]:
    """The torch import (the reference), then ``--version``, ``--help`` and a one-sentence ``predict`` with
    the bundled default model, for each checkout in ``roots`` (label → repository root)."""
    listed = [Command("import torch", "reference", [sys.executable, "-c", "import torch"])]  # key: TORCH
    for label, root in roots.items():
        output = one_sentence.with_name(f"tagged-{label}.conll")
        listed += [
            Command("embedcache --version", label, embedcache_command(root, ["--version"])),
            Command("embedcache --help", label, embedcache_command(root, ["--help"])),
            Command(
                "embedcache predict (one sentence)",
                label,
                embedcache_command(
                    root,
                    ["predict", str(one_sentence), "--output", str(output), "--device", device, "--quiet"],
                ),
            ),
        ]
    return listed


def run_once(command: Command, env: dict[str, str]) -> Measurement:
    """Wall and CPU seconds of one run of ``command`` (a failed run stops the suite)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command.argv, env=env, check=True, stdout=subprocess.DEVNULL, cwd=REPO_ROOT)
    wall_s = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measurement(wall_s, cpu_s)


def time_commands(listed: Sequence[Command], rounds: int, warmup: int) -> dict[str, list[Measurement]]:
    """Every command once per round, in an order that rotates from round to round; warm-up rounds dropped."""
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # the suite's thread count
    runs: dict[str, list[Measurement]] = {command.key: [] for command in listed}
    for round_index in range(warmup + rounds):
        first = round_index % len(listed)
        for command in [*listed[first:], *listed[:first]]:
            measurement = run_once(command, env)
            if round_index >= warmup:
                runs[command.key].append(measurement)
        log.info("startup: round %d of %d done", round_index + 1, warmup + rounds)
    return runs


def plan(config: BenchConfig) -> StartupPlan:
    roots = {"this checkout": REPO_ROOT}
    if config.baseline is not None:
        roots = {"baseline": config.baseline.resolve(), **roots}
    rounds = QUICK_ROUNDS if config.quick else max(config.repeats, MIN_ROUNDS)
    return StartupPlan(roots, rounds, config.quick)


def measure(plan: StartupPlan, config: BenchConfig) -> StartupRun:
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as folder:
        one_sentence = Path(folder) / "one.txt"
        one_sentence.write_text(SENTENCE, encoding="utf-8")
        listed = commands(plan.roots, one_sentence, config.device.type)
        runs = time_commands(listed, plan.rounds, config.warmup)
    return StartupRun(listed, runs, plan.rounds)


# The one-sentence predict runs the bundled default model: nothing to train.
SUITE = Suite("startup", ("bundled",), plan, measure, render)
