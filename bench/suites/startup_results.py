"""What the ``startup`` suite reports: wall and CPU time of each command, and its ratio to importing torch."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from bench.report import SuiteResult, Table, format_ratio, format_seconds, quick_run_note

VERSION_TARGET_S = 0.5  # issue #15: `embedcache --version` within half a second, torch or not
PREDICT_MARGIN_S = 1.0  # issue #15: a one-sentence predict within the torch import + 1 s
TORCH = "reference: import torch"

DESCRIPTION = """\
Start-up of the command line as a user meets it: each command is a fresh process (interpreter, imports,
loading the model), run from the repository root. The commands: `python -c "import torch"` (the reference:
any tagging needs torch), `embedcache --version`, `embedcache --help`, and `embedcache predict ONE.txt
--output OUT --device DEVICE --quiet` on one sentence ("Apple is looking at buying a U.K. startup for $1
billion.") with the bundled default model (`en-upos`: forward and backward char LMs, BiLSTM-CRF). Each
`embedcache` command is the console script's entry point, `from embedcache.cli import main`, with the
checkout to import from put first on `sys.path`; `OMP_NUM_THREADS` is the suite's torch thread count.

Rounds: one untimed, then at least 5 timed; in each round every command runs once, the order rotating from
round to round. Wall time is read around the process, CPU time (user + system) from the operating system's
accounting of the finished child. Ratios divide a command's median wall time by the torch import's median
from the same run.

Targets (issue #15): `embedcache --version` ≤ 0.5 s and importing neither torch nor Flair; a one-sentence
`embedcache predict` ≤ the torch import + 1.0 s, never importing Flair. Before, `import embedcache`
imported Flair (and with it `transformers`): on the 2-core machine where the issue was filed, `--help`,
`--version` and a missing-file error each took 7–13 s of wall time (about 8 s of CPU), a one-sentence
predict 7–15 s, and the `predict` suite measured 10.7 s of start-up (22 s on a GPU machine). A `baseline`
row is the same command run from another checkout (`--baseline DIR`) in this same run.

`predict` runs with the command line's default backend: since issue #17 `auto`, which on a CPU with ONNX
Runtime installed runs the LMs and the tagger's head as int8 ONNX Runtime graphs (exported into the cache
in the untimed round, read from it after: start-up includes importing ONNX Runtime, checking the files'
sha256 and opening three sessions); a checkout from before it runs torch."""


@dataclass(frozen=True)
class StartupPlan:
    """The checkouts whose command line is timed (label → repository root), and the timed rounds."""

    roots: dict[str, Path]
    rounds: int
    quick: bool


@dataclass(frozen=True)
class Command:
    """One command line to time, from one checkout (``label``)."""

    name: str
    label: str
    argv: list[str]

    @property
    def key(self) -> str:
        return f"{self.label}: {self.name}"


@dataclass(frozen=True)
class Measurement:
    """One run of a command."""

    wall_s: float
    cpu_s: float


@dataclass(frozen=True)
class StartupRun:
    """Everything the suite measured: the commands and each one's runs."""

    commands: list[Command]
    runs: dict[str, list[Measurement]]
    rounds: int

    def median_wall(self, key: str) -> float:
        return statistics.median(m.wall_s for m in self.runs[key])

    def min_wall(self, key: str) -> float:
        return min(m.wall_s for m in self.runs[key])

    def median_cpu(self, key: str) -> float:
        return statistics.median(m.cpu_s for m in self.runs[key])

    def over_torch(self, key: str) -> float:
        """The command's median wall time ÷ the torch import's."""
        return self.median_wall(key) / self.median_wall(TORCH)


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def headline_table(run: StartupRun) -> Table:
    torch_s = run.median_wall(TORCH)
    version = run.median_wall("this checkout: embedcache --version")
    predict = run.median_wall("this checkout: embedcache predict (one sentence)")
    rows = [
        ["`python -c \"import torch\"` (reference)", format_seconds(torch_s), "–", "–"],
        ["`embedcache --version`", format_seconds(version), f"≤ {format_seconds(VERSION_TARGET_S)}",
         _verdict(version <= VERSION_TARGET_S)],
        ["`embedcache predict`, one sentence", format_seconds(predict),
         f"≤ torch import + {PREDICT_MARGIN_S:.1f} s = {format_seconds(torch_s + PREDICT_MARGIN_S)}",
         _verdict(predict <= torch_s + PREDICT_MARGIN_S)],
    ]  # fmt: skip
    return Table("Headline (this checkout)", ["command", "wall, median", "target", "verdict"], rows)


def commands_table(run: StartupRun) -> Table:
    rows = [
        [f"`{command.name}`", command.label, format_seconds(run.median_wall(command.key)),
         format_seconds(run.min_wall(command.key)), format_seconds(run.median_cpu(command.key)),
         format_ratio(run.over_torch(command.key))]
        for command in run.commands
    ]  # fmt: skip
    notes = [f"{run.rounds} timed rounds; CPU: user + system time of the process."]
    columns = ["command", "checkout", "wall, median", "wall, min", "CPU, median", "÷ import torch"]
    return Table("Every command", columns, rows, notes)


def render(plan: StartupPlan, run: StartupRun) -> SuiteResult:
    description = DESCRIPTION + quick_run_note(plan.quick, f"{run.rounds} rounds")
    data = {
        "rounds": run.rounds,
        "commands": [{"key": c.key, "argv": c.argv} for c in run.commands],
        "runs": {key: [vars(m) for m in runs] for key, runs in run.runs.items()},
        "median_wall_s": {key: run.median_wall(key) for key in run.runs},
        "median_cpu_s": {key: run.median_cpu(key) for key in run.runs},
    }
    return SuiteResult(
        suite="startup",
        title="`startup`: how soon the command line answers, against `import torch`",
        description=description,
        tables=[headline_table(run), commands_table(run)],
        data=data,
    )
