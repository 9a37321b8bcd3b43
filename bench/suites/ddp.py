"""Suite ``ddp``: the same WNUT-17 training on 1 and on 2 ranks (``torchrun``, gloo on the CPU).

Every run is ``python -m torch.distributed.run --standalone --nproc-per-node=N -m bench.suites.ddp SPEC``: the
same launcher for both, so neither pays a start-up the other does not. Rank 0 writes its epoch times; each
rank's train-cache bytes come from :func:`embedcache.estimate` on its shard (the exact store size).
"""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import embedcache as ec
from bench.harness import REPO_ROOT, BenchConfig
from bench.inputs import BATCH_SIZE
from bench.report import SuiteResult, Table, format_ratio, format_seconds, quick_run_note
from bench.suites.train import HIDDEN_SIZE, LEARNING_RATE, LM_DIR
from embedcache.data.datasets import WNUT17
from embedcache.training.distributed import is_main_process

log = logging.getLogger(__name__)

WORLD_SIZES = (1, 2)
RUN_TIMEOUT_S = 1800


@dataclass(frozen=True)
class DdpSpec:
    """One training run on ``world_size`` ranks of ``threads`` torch threads each."""

    data_dir: str
    world_size: int
    threads: int
    n_train: int
    n_dev: int
    epochs: int
    out: str


FULL = {"n_train": 600, "n_dev": 100, "epochs": 2}
QUICK = {"n_train": 60, "n_dev": 20, "epochs": 2}

DESCRIPTION = f"""\
The trainer under `torchrun` on the CPU: the first {{n_train}} WNUT-17 train and {{n_dev}} dev sentences,
the trained char LMs in `out/charlm` (forward + backward, hidden 256), tagger hidden {HIDDEN_SIZE}, CRF,
`cpu` storage in float32, SGD at {LEARNING_RATE}, {{epochs}} epochs. One rank trains with mini-batches of
{BATCH_SIZE}; two ranks with {BATCH_SIZE // 2} each, so the effective batch ({BATCH_SIZE} sentences per
optimiser step) and the number of steps are the same. Each rank caches only its shard of the train split;
rank 0 alone caches and evaluates dev, while the other waits. An epoch's time is rank 0's
`history[i]["seconds"]`: its steps, the gradient all-reduces and the dev evaluation. Each run is a fresh
`torchrun` launch; tables give the median over `--repeats` launches.

On a machine with 2 shared cores two single-threaded ranks can at best halve the step time, and the dev
evaluation (on rank 0 only) does not shrink; with other processes on the cores the gain is smaller still."""


def rank_main(spec_path: str) -> None:
    """One rank of a run (started by ``torchrun``): train and, on rank 0, write the epoch times."""
    spec = DdpSpec(**json.loads(Path(spec_path).read_text()))
    torch.set_num_threads(spec.threads)
    full = WNUT17(Path(spec.data_dir) / "wnut17")
    corpus = ec.Corpus(full.train[: spec.n_train], full.dev[: spec.n_dev], [])
    tags = ec.TagDictionary.from_sentences([s.tags for s in corpus.train], scheme="BIOES")
    embeddings = [ec.CharLMEmbeddings(LM_DIR / "forward"), ec.CharLMEmbeddings(LM_DIR / "backward")]
    torch.manual_seed(0)
    tagger = ec.SequenceTagger(embeddings, tags, "ner", hidden_size=HIDDEN_SIZE)
    result = ec.Trainer(tagger, corpus).train(
        spec.out, storage_mode="cpu", cache_dtype="float32", max_epochs=spec.epochs,
        mini_batch_size=BATCH_SIZE // spec.world_size, learning_rate=LEARNING_RATE, progress=False,
    )  # fmt: skip
    if is_main_process():
        shards = [corpus.train[rank :: spec.world_size] for rank in range(spec.world_size)]
        record = {
            "seconds": [r["seconds"] for r in result.history],
            "cache_nbytes_per_rank": [ec.estimate(shard, embeddings, torch.float32) for shard in shards],
            "tokens_per_rank": [sum(len(s) for s in shard) for shard in shards],
            "dim": sum(e.embedding_length for e in embeddings),
        }
        (Path(spec.out) / "bench.json").write_text(json.dumps(record))


def launch(spec: DdpSpec) -> dict:
    spec_path = Path(spec.out) / "spec.json"
    spec_path.write_text(json.dumps(asdict(spec)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={spec.world_size}", "-m", "bench.suites.ddp", str(spec_path)]  # fmt: skip
    subprocess.run(command, cwd=REPO_ROOT, check=True, timeout=RUN_TIMEOUT_S, capture_output=True)
    record = json.loads((Path(spec.out) / "bench.json").read_text())
    log.info("%d rank(s): epochs %s", spec.world_size, record["seconds"])
    return record


def run(config: BenchConfig) -> SuiteResult:
    plan = QUICK if config.quick else FULL
    runs: dict[int, list[dict]] = {n: [] for n in WORLD_SIZES}
    for _ in range(config.repeats):
        for world_size in WORLD_SIZES:
            with tempfile.TemporaryDirectory(prefix=f"bench-ddp-{world_size}-") as out:
                spec = DdpSpec(str(config.data_dir), world_size, torch.get_num_threads(), out=out, **plan)
                runs[world_size].append(launch(spec))
    return SuiteResult(
        suite="ddp",
        title="`ddp`: epoch time on 1 and 2 CPU ranks (torchrun, gloo), WNUT-17",
        description=DESCRIPTION.format(**plan) + quick_run_note(config.quick, "a smoke test"),
        tables=[_epoch_table(runs), _cache_table(runs)],
        data={"plan": plan, "threads_per_rank": torch.get_num_threads(), "runs": runs},
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


if __name__ == "__main__":
    rank_main(sys.argv[1])
