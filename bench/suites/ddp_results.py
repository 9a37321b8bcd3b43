"""What the ``ddp`` suite reports: rank 0's epoch times on 1 and 2 CPU ranks; train-cache bytes per rank."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.lms import describe
from bench.report import SuiteResult, Table, format_ratio, format_seconds, quick_run_note
from bench.specs import BATCH_SIZE, NER_TAGGER


@dataclass(frozen=True)
class DdpPlan:
    """The slices and epochs of every run, the rank counts, and the launches of each (``--repeats``)."""

    n_train: int
    n_dev: int
    epochs: int
    world_sizes: tuple[int, ...]
    launches: int
    quick: bool


@dataclass(frozen=True)
class DdpRun:
    """Rank 0's record of every launch, by rank count, and the torch threads of each rank."""

    runs: dict[int, list[dict]]
    threads_per_rank: int


DESCRIPTION = f"""\
The trainer under `torchrun` on the CPU: the first {{n_train}} WNUT-17 train and {{n_dev}} dev sentences,
{describe("random")}, tagger hidden {NER_TAGGER.hidden_size}, CRF, `cpu` storage in float32, SGD at
{NER_TAGGER.learning_rate}, {{epochs}} epochs. One rank trains with mini-batches of
{BATCH_SIZE}; two ranks with {BATCH_SIZE // 2} each, so the effective batch ({BATCH_SIZE} sentences per
optimiser step) and the number of steps are the same. Each rank caches only its shard of the train split;
rank 0 alone caches and evaluates dev, while the other waits. An epoch's time is rank 0's
`history[i]["seconds"]`: its steps, the gradient all-reduces and the dev evaluation. Each run is a fresh
`torchrun` launch; tables give the median over `--repeats` launches.

On a machine with 2 shared cores two single-threaded ranks can at best halve the step time, and the dev
evaluation (on rank 0 only) does not shrink; with other processes on the cores the gain is smaller still."""


def render(plan: DdpPlan, run: DdpRun) -> SuiteResult:
    sizes = {"n_train": plan.n_train, "n_dev": plan.n_dev, "epochs": plan.epochs}
    return SuiteResult(
        suite="ddp",
        title="`ddp`: epoch time on 1 and 2 CPU ranks (torchrun, gloo), WNUT-17",
        description=DESCRIPTION.format(**sizes) + quick_run_note(plan.quick, "a smoke test"),
        tables=[_epoch_table(run.runs), _cache_table(run.runs)],
        data={"plan": sizes, "threads_per_rank": run.threads_per_rank, "runs": run.runs},
    )


def _median_epoch(records: list[dict], epoch: int) -> float:
    return statistics.median(record["seconds"][epoch] for record in records)


def _epoch_table(runs: dict[int, list[dict]]) -> Table:
    one = _median_epoch(runs[1], 1)
    rows = [
        [str(n), format_seconds(_median_epoch(records, 0)), format_seconds(_median_epoch(records, 1)),
         format_ratio(one / _median_epoch(records, 1))]
        for n, records in runs.items()
    ]  # fmt: skip
    notes = [
        "Median over the launches; epochs 1 and 2 do the same work (the caches are built before epoch 1).",
        "Speed-up = 1-rank epoch 2 ÷ this epoch 2 (above 1: faster than one rank).",
    ]
    return Table(
        "Epoch wall time (rank 0)", ["ranks", "epoch 1", "epoch 2", "speed-up, epoch 2"], rows, notes
    )


def _cache_table(runs: dict[int, list[dict]]) -> Table:
    rows = []
    for n, records in runs.items():
        record = records[0]
        for rank, (nbytes, tokens) in enumerate(
            zip(record["cache_nbytes_per_rank"], record["tokens_per_rank"], strict=True)
        ):
            rows.append(
                [str(n), str(rank), f"{tokens:,}", f"{nbytes:,}", f"({tokens:,} + 1) × {record['dim']} × 4"]
            )
    return Table(
        "Train-cache bytes per rank (float32)",
        ["ranks", "rank", "tokens in shard", "bytes", "= (tokens + 1) × D × 4"],
        rows,
        ["The extra row is the zero vector that pads batches; dev is cached on rank 0 only."],
    )
