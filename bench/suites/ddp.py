"""Suite ``ddp``: the same WNUT-17 training on 1 and on 2 ranks (``torchrun``, gloo on the CPU).

Every run is ``python -m torch.distributed.run --standalone --nproc-per-node=N -m bench.suites.ddp SPEC``: the
same launcher for both, so neither pays a start-up the other does not. Rank 0 writes its epoch times; each
rank's train-cache bytes come from :func:`embedcache.estimate` on its shard (the exact store size). The char
LMs are random, of the recipe's size, written once for all launches (:func:`bench.lms.write_char_lms`).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import embedcache as ec
from bench.harness import REPO_ROOT, BenchConfig, Suite
from bench.lms import DIRECTIONS, CharLMFiles, write_char_lms
from bench.specs import BATCH_SIZE, NER_TAGGER, WNUT17
from bench.suites.ddp_results import DdpPlan, DdpRun, render
from embedcache.training.distributed import is_main_process

log = logging.getLogger(__name__)

WORLD_SIZES = (1, 2)
RUN_TIMEOUT_S = 1800


@dataclass(frozen=True)
class DdpSpec:
    """One training run on ``world_size`` ranks of ``threads`` torch threads each."""

    data_dir: str
    lm_dir: str
    world_size: int
    threads: int
    n_train: int
    n_dev: int
    epochs: int
    out: str


def rank_main(spec_path: str) -> None:
    """One rank of a run (started by ``torchrun``): train and, on rank 0, write the epoch times."""
    spec = DdpSpec(**json.loads(Path(spec_path).read_text()))
    torch.set_num_threads(spec.threads)
    full = ec.datasets.WNUT17(Path(spec.data_dir) / WNUT17)
    corpus = ec.Corpus(full.train[: spec.n_train], full.dev[: spec.n_dev], [])
    tags = ec.TagDictionary.from_sentences([s.tags for s in corpus.train], scheme=NER_TAGGER.tag_scheme)
    lms = CharLMFiles(Path(spec.lm_dir), "random")
    embeddings = [ec.CharLMEmbeddings(lms.embedcache_path(direction)) for direction in DIRECTIONS]
    torch.manual_seed(0)
    tagger = ec.SequenceTagger(embeddings, tags, "ner", hidden_size=NER_TAGGER.hidden_size)
    result = ec.Trainer(tagger, corpus).train(
        spec.out, storage_mode="cpu", cache_dtype="float32", max_epochs=spec.epochs,
        mini_batch_size=BATCH_SIZE // spec.world_size, learning_rate=NER_TAGGER.learning_rate, progress=False,
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


def plan(config: BenchConfig) -> DdpPlan:
    sizes = (60, 20) if config.quick else (600, 100)
    return DdpPlan(*sizes, epochs=2, world_sizes=WORLD_SIZES, launches=config.repeats, quick=config.quick)


def measure(plan: DdpPlan, config: BenchConfig) -> DdpRun:
    runs: dict[int, list[dict]] = {n: [] for n in plan.world_sizes}
    with tempfile.TemporaryDirectory(prefix="bench-ddp-lms-") as lm_dir:
        write_char_lms(Path(lm_dir), "random")
        for _ in range(plan.launches):
            for world_size in plan.world_sizes:
                with tempfile.TemporaryDirectory(prefix=f"bench-ddp-{world_size}-") as out:
                    spec = DdpSpec(
                        str(config.data_dir), lm_dir, world_size, torch.get_num_threads(), plan.n_train,
                        plan.n_dev, plan.epochs, out,
                    )  # fmt: skip
                    runs[world_size].append(launch(spec))
    return DdpRun(runs, torch.get_num_threads())


SUITE = Suite("ddp", ("random",), plan, measure, render)


if __name__ == "__main__":
    rank_main(sys.argv[1])
