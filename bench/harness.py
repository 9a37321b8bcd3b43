"""Timing and provenance shared by every suite: warm-up, repeated interleaved rounds, machine and versions.

Ratios between cases are only meaningful when the cases run in one process on one machine under the same
load, so :func:`time_cases` interleaves them as finely as it can: for every item (a mini-batch) it runs each
case in turn, and load that comes and goes (other processes on a shared machine) spreads over all cases
instead of landing on one. The order of the cases rotates from item to item, so no case is always the first to
touch an item's data (cold caches) or always the last.
"""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import import_module
from pathlib import Path
from typing import Generic, Literal, TypeVar

import torch

from bench.report import SuiteResult

Item = TypeVar("Item")
Plan = TypeVar("Plan")
Measured = TypeVar("Measured")
LMSource = Literal["random", "bundled"]

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class BenchConfig:
    """What a suite is asked to do; built from the command line.

    Attributes:
        data_dir: the shared data directory (holding ``wnut17/``, ...).
        device: the compute device the LMs and taggers run on.
        repeats: timed rounds per case; medians are reported.
        warmup: untimed rounds before them (first-call costs: allocator, kernel selection, lazy init).
        quick: a small slice, for checking that a suite runs, not for the record.
        baseline: another checkout of the repository whose command line the ``startup`` suite times beside
            this one's (e.g. ``git worktree add /tmp/before main``).
        ner_model: a trained WNUT-17 NER model directory, whose int8 accuracy cost the ``onnx`` suite
            measures beside the bundled ``en-upos`` model's (none: that row is left out, and said so).
    """

    data_dir: Path
    device: torch.device
    repeats: int = 3
    warmup: int = 1
    quick: bool = False
    baseline: Path | None = None
    ner_model: Path | None = None


@dataclass(frozen=True)
class Suite(Generic[Plan, Measured]):
    """A benchmark suite: three plain functions, run in turn by :meth:`run`.

    Each suite is two modules: ``bench/suites/NAME_results.py`` holds its plan (what it runs: slices, sizes,
    cases; ``--quick`` chooses the smallest), the dataclasses of what it measures and ``render``, which lays
    them out as tables and needs neither torch nor Flair to run; ``bench/suites/NAME.py`` holds ``plan`` and
    ``measure`` and declares ``SUITE = Suite(...)``. :data:`bench.suites.SUITES` registers every suite.

    Attributes:
        name: ``--suite NAME``; the suite's block in ``BENCHMARKS.md`` and ``bench/results/NAME.json``.
        lms: where its character LMs come from, each source it uses: ``random`` (seeded random weights
            created in the run, for figures that depend on sizes only) or ``bundled`` (the bundled model's
            trained LMs, for figures that depend on the weights). Nothing is trained beforehand: a fresh clone
            runs every suite.
        plan: the runs to make, from the command line's options.
        measure: makes the runs; returns the raw measurements (no formatting).
        render: plan and measurements to the record's text and tables (no measuring).
    """

    name: str
    lms: tuple[LMSource, ...]
    plan: Callable[[BenchConfig], Plan]
    measure: Callable[[Plan, BenchConfig], Measured]
    render: Callable[[Plan, Measured], SuiteResult]

    def run(self, config: BenchConfig) -> SuiteResult:
        """Plan, measure and render: the suite's section of the record."""
        plan = self.plan(config)
        return self.render(plan, self.measure(plan, config))


@dataclass(frozen=True)
class Case(Generic[Item]):
    """One thing to time, called once per item (e.g. per mini-batch) in every round.

    Attributes:
        name: key of the case in the results.
        run: the timed call; its return value is kept until the clock has stopped, so freeing it is not timed.
        prepare: an untimed call before each ``run`` on the same item (clearing embeddings, setting inputs).
    """

    name: str
    run: Callable[[Item], object]
    prepare: Callable[[Item], object] | None = None


@dataclass(frozen=True)
class Timing:
    """Per-round totals in seconds of one case (each round: the sum of its per-item times)."""

    runs_s: tuple[float, ...]

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s)

    @property
    def min_s(self) -> float:
        return min(self.runs_s)

    def to_json(self) -> dict[str, float | list[float]]:
        return {"median_s": self.median_s, "min_s": self.min_s, "runs_s": list(self.runs_s)}


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so a host clock read afterwards covers them (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_once(case: Case[Item], item: Item, device: torch.device) -> float:
    if case.prepare is not None:
        case.prepare(item)
    synchronize(device)
    start = time.perf_counter()
    result = case.run(item)
    synchronize(device)
    elapsed_s = time.perf_counter() - start
    del result  # freed after the clock stopped
    return elapsed_s


def time_cases(
    cases: Sequence[Case[Item]],
    items: Sequence[Item],
    *,
    warmup: int,
    repeats: int,
    device: torch.device,
) -> dict[str, Timing]:
    """Time every case over all items: ``warmup`` untimed rounds, then ``repeats`` timed ones.

    In a round, each item is given to every case in turn (in an order rotating with the item), each call is
    timed on its own with ``prepare`` outside the clock, and each case's times are summed over the items: a
    round's total is the time spent inside ``run`` over the whole slice.

    Returns:
        The :class:`Timing` of each case, by name.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    runs: dict[str, list[float]] = {case.name: [] for case in cases}
    for round_index in range(warmup + repeats):
        totals = dict.fromkeys(runs, 0.0)
        for index, item in enumerate(items):
            first = index % len(cases)
            for case in [*cases[first:], *cases[:first]]:
                totals[case.name] += _time_once(case, item, device)
        if round_index >= warmup:
            for name, total_s in totals.items():
                runs[name].append(total_s)
    return {name: Timing(tuple(totals_s)) for name, totals_s in runs.items()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _imported_version(name: str) -> str:
    """The version of the module this process imported: on a machine with several installs (or none, with the
    repository on ``PYTHONPATH``), the metadata of an installed distribution may describe other code."""
    return str(import_module(name).__version__)


def load_average() -> str:
    """The 1-minute load average: on a shared machine it says how much the timings were disturbed."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"


def environment(device: torch.device) -> dict[str, str]:
    """The machine, the software versions and the date, to print beside every result."""
    info = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cpu_cores": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "device": str(device),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average": load_average(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = str(torch.version.cuda)
    for package in ("torch", "flair", "embedcache", "numpy"):
        info[package] = _imported_version(package)
    return info


def command_line() -> str:
    """The command that is running, as one would type it from the repository root."""
    return shlex.join(["python", "-m", "bench", *sys.argv[1:]])
