"""Rendering results: one marked section per suite in ``BENCHMARKS.md``, and a JSON file of raw timings.

``BENCHMARKS.md`` is the committed record. Each suite owns the text between ``<!-- bench:begin NAME -->`` and
``<!-- bench:end NAME -->``; regenerating a suite replaces only its own block, so suites can be rerun one at a
time and text outside the blocks is left as it is. The intro is a block too, refreshed on every write.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

INTRO = """\
# Benchmarks

Side-by-side timings of embedcache against Flair 0.15.1, written by `python -m bench` (code in `bench/`).
Each section below is one suite and says what it measures, the exact command, the machine, the versions and
the date. Text between the `bench:begin`/`bench:end` markers is generated: rerun the suite instead of editing.

How the numbers are taken: one untimed round (warm-up), then `--repeats` timed rounds (3 by default); tables
give the median and the minimum over the rounds. In a round, each mini-batch goes to every case in turn (the
order rotates from batch to batch), so load from other processes spreads over all cases; each call is timed
on its own, setup such as clearing embeddings stays outside the clock, and a case's times are summed over the
batches. On CUDA the device is synchronised before every clock read.

Ratios compare cases measured in one process, on one machine, in one run; compare ratios, not absolute times
across sections or machines. The 1-minute load average is printed because a shared machine slows every case.

Regenerate a suite from the repository root with `python -m bench --suite NAME` (`--help` for options;
`--quick` is a smoke run on a small slice). Raw per-round timings go to `bench/results/NAME.json`
(git-ignored). No suite needs anything trained beforehand: where a figure depends on sizes only (time,
bytes) the char LMs are random and seeded, of the size the section states; where it depends on the weights
(F1, accuracy) they are the bundled model's trained LMs; each section says which it ran (sections recorded
before this rule used LMs trained into `out/charlm`, the same ones the bundled model holds). One option adds
a model trained beforehand: `--suite onnx --ner-model DIR` also scores a WNUT-17 NER model (trained with
`recipes/wnut17_ner_en.toml` for the record); without it that row is left out."""


@dataclass(frozen=True)
class Table:
    """A Markdown table with a heading and optional notes printed under it."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SuiteResult:
    """What a suite returns: tables for people, raw data for the JSON file.

    Attributes:
        suite: the suite's name (its block marker and JSON file name).
        title: the section heading.
        description: Markdown paragraphs on what is measured and why.
        tables: the tables, headline first.
        data: JSON-serialisable raw measurements.
    """

    suite: str
    title: str
    description: str
    tables: list[Table]
    data: dict[str, Any]


def quick_run_note(quick: bool, slice_text: str) -> str:
    """The paragraph that marks a ``--quick`` section as a smoke test (empty for the record itself)."""
    return f"\n\n**Quick run** (`--quick`): {slice_text}, not the record." if quick else ""


def recorded_per_device(result: SuiteResult, device_type: str) -> SuiteResult:
    """``result`` under the name of its device's record: CPU runs keep the suite's name, others get their own.

    A CUDA run measures other things than a CPU run (kernel launches, transfers, device memory), so it gets a
    section of its own (``embed-cuda``, ``bench/results/embed-cuda.json``) instead of replacing the CPU one.
    """
    if device_type == "cpu":
        return result
    return replace(
        result, suite=f"{result.suite}-{device_type}", title=f"{result.title}, on {device_type.upper()}"
    )


@dataclass(frozen=True)
class RunInfo:
    """Provenance of one suite run: the command, the machine and versions, and how long it took."""

    command: str
    environment: dict[str, str]
    load_average_after: str
    runtime_s: float


def format_seconds(seconds: float) -> str:
    """Three significant digits in a unit that fits: ``812 µs``, ``41.3 ms``, ``2.07 s``."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_ratio(ratio: float) -> str:
    return f"{ratio:.2f}×" if ratio < 10 else f"{ratio:.1f}×"


def format_ratios(median: float, minimum: float) -> str:
    """A ratio of medians with the ratio of minimums beside it: ``1.42× (1.39×)``."""
    return f"{format_ratio(median)} ({format_ratio(minimum)})"


def render_table(table: Table) -> str:
    lines = [f"### {table.title}", "", "| " + " | ".join(table.columns) + " |"]
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    if table.notes:
        lines += ["", *(f"- {note}" for note in table.notes)]
    return "\n".join(lines)


def _busy_machine_warning(info: RunInfo) -> str | None:
    """A warning when other processes competed for the CPU: before the run, or beyond its own threads."""
    try:
        before, after = float(info.environment["load_average"]), float(info.load_average_after)
    except ValueError:  # no load average on this platform
        return None
    if before < 1.0 and after < int(info.environment["torch_threads"]) + 1:
        return None
    return (
        f"- **Busy machine**: other processes competed for the CPU (load {before:.2f} → {after:.2f} on "
        f"{info.environment['cpu_cores']} cores). That inflates multi-threaded kernels most (a parallel "
        "region waits for a descheduled thread), so trust ratios whose medians and mins agree."
    )


def _provenance(info: RunInfo) -> str:
    env = info.environment
    machine = f"{env['cpu']}, {env['cpu_cores']} cores, torch threads {env['torch_threads']}"
    if "gpu" in env:
        machine += f", GPU {env['gpu']} (CUDA {env['cuda']})"
    load = f"1-min load average {env['load_average']} at start, {info.load_average_after} at end"
    versions = ", ".join(
        f"{name} {env[name]}" for name in ("python", "torch", "flair", "embedcache", "numpy")
    )
    lines = [
        f"- **Command** (from the repository root): `{info.command}`; took {info.runtime_s:.0f} s",
        f"- **Machine**: {machine}; device `{env['device']}`; {load}; {env['os']}",
        f"- **Versions**: {versions}",
        f"- **Date**: {env['date']}",
    ]
    warning = _busy_machine_warning(info)
    return "\n".join([*lines, warning] if warning else lines)


def render_section(result: SuiteResult, info: RunInfo) -> str:
    """The suite's Markdown block body: heading, description, provenance, tables."""
    parts = [f"## {result.title}", result.description.strip(), _provenance(info)]
    parts += [render_table(table) for table in result.tables]
    return "\n\n".join(parts)


def _block(name: str, body: str) -> str:
    return f"<!-- bench:begin {name} -->\n{body}\n<!-- bench:end {name} -->"


def _replace_block(text: str, name: str, body: str, *, at_start: bool) -> str:
    """``text`` with block ``name`` replaced by ``body``; a missing block is added at the start or the end."""
    pattern = re.compile(
        rf"<!-- bench:begin {re.escape(name)} -->.*?<!-- bench:end {re.escape(name)} -->", re.DOTALL
    )
    block = _block(name, body)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    if not text.strip():
        return block + "\n"
    return f"{block}\n\n{text.lstrip()}" if at_start else f"{text.rstrip()}\n\n{block}\n"


def update_markdown(path: Path, result: SuiteResult, info: RunInfo) -> None:
    """Write the suite's section into ``path``, keeping every other suite's section and any other text."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    text = _replace_block(text, "intro", INTRO, at_start=True)
    text = _replace_block(text, result.suite, render_section(result, info), at_start=False)
    path.write_text(text, encoding="utf-8")


def write_json(path: Path, result: SuiteResult, info: RunInfo) -> None:
    """Raw results with their provenance, for scripts and for comparing runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "suite": result.suite,
        "command": info.command,
        "environment": info.environment,
        "load_average_after": info.load_average_after,
        "runtime_s": info.runtime_s,
        "data": result.data,
    }
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
