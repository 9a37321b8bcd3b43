"""Training on two CPU ranks (gloo): shards, replicas in lockstep, equality with one process, failures.

The ranks are separate Python processes given the environment ``torchrun`` would give them (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``…), started with ``python -m tests.training.test_distributed SETTINGS.json``.
Plain processes rather than ``torchrun`` or ``torch.multiprocessing.spawn``: those launchers kill the
survivors when one rank dies, and the failure test is about what the *trainer* does when a peer vanishes.

Each rank records, per optimiser step, a SHA-256 of the tagger's trainable parameters, plus its shard and the
bytes of its cache, in ``OUT/rank-R.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import embedcache as ec
from embedcache.cli import build_parser
from embedcache.cli.train import _rank_arguments
from embedcache.data.corpus import Corpus
from embedcache.data.datasets import WNUT17
from embedcache.inference.tagger import SequenceTagger
from embedcache.models.labels import TagDictionary
from embedcache.training import Trainer, TrainingConfig
from embedcache.training.batches import optimizer_steps
from embedcache.training.distributed import RankInfo, epoch_seeds, shard_ids, torchrun_command
from embedcache.training.trainer import _Run
from tests.conftest import REPO_ROOT, make_lm

N_TRAIN, N_EVAL = 48, 10
# Generous: two processes import torch and Flair on a shared 2-core machine; a hang would exceed it.
LAUNCH_TIMEOUT_S = 240


def small_corpus(data_dir: Path) -> Corpus:
    return WNUT17(data_dir / "wnut17").subset(N_TRAIN, N_EVAL)


def tiny_tagger(corpus: Corpus, dropout: bool) -> SequenceTagger:
    """The same initial weights in every process (seeded), with the dropouts on or off."""
    torch.manual_seed(0)
    tags = TagDictionary.from_sentences([s.tags for s in corpus.train + corpus.dev + corpus.test], "BIOES")
    embeddings = [
        ec.CharLMEmbeddings(make_lm(True, 16, seed=1)),
        ec.CharLMEmbeddings(make_lm(False, 16, seed=2)),
    ]
    rates = {} if dropout else {"word_dropout": 0.0, "locked_dropout": 0.0}
    return SequenceTagger(embeddings, tags, "ner", hidden_size=16, **rates)


def trainable_checksum(tagger: SequenceTagger) -> str:
    digest = hashlib.sha256()
    for name, tensor in tagger.state_dict().items():
        if not name.startswith("embeddings."):
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def train_options(settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "storage_mode": "cpu",
        "cache_dtype": "float16",
        "max_epochs": settings["epochs"],
        "mini_batch_size": settings["mini_batch_size"],
        "shuffle": settings["shuffle"],
        "seed": 7,
        "progress": False,
        "distributed_timeout_s": 60.0,
        "resume": settings.get("resume", False),
    }


def worker(settings_path: str) -> None:
    """One rank: train with the recorded settings, writing what the tests check to ``OUT/rank-R.json``."""
    settings = json.loads(Path(settings_path).read_text())
    rank, out = int(os.environ["RANK"]), Path(settings["out"])
    corpus = small_corpus(Path(settings["data_dir"]))
    tagger = tiny_tagger(corpus, settings["dropout"])
    record: dict[str, Any] = {"checksums": [], "caches": {}}
    step, source, run_epoch = _Run._optimizer_step, _Run._source, _Run._run_epoch

    def recorded_step(run, *args):
        result = step(run, *args)
        record["shard"] = run.shard
        record["checksums"].append(trainable_checksum(run.tagger))
        return result

    def recorded_source(run, sentences, split):
        cache = source(run, sentences, split)
        tokens = sum(len(s) for s in sentences)
        record["caches"][split] = {"nbytes": cache.nbytes, "tokens": tokens, "dim": cache.embedding_length}
        return cache

    def crashing_epoch(run, epoch, *args):
        if rank == settings.get("crash_rank") and epoch == settings.get("crash_epoch"):
            (out / f"rank-{rank}.json").write_text(json.dumps(record))
            os._exit(3)  # no cleanup, no goodbye to the peers: as a killed process
        run_epoch(run, epoch, *args)

    _Run._optimizer_step, _Run._source, _Run._run_epoch = recorded_step, recorded_source, crashing_epoch
    try:
        Trainer(tagger, corpus).train(out, **train_options(settings))
    finally:
        (out / f"rank-{rank}.json").write_text(json.dumps(record))


def launch(
    tmp_path: Path, data_dir: Path, world_size: int = 2, **settings: Any
) -> list[subprocess.CompletedProcess]:
    """Start ``world_size`` ranks as torchrun would and wait for all of them."""
    settings = {"out": str(tmp_path), "data_dir": str(data_dir), "dropout": False, "shuffle": False,
                "epochs": 2, "mini_batch_size": 4, **settings}  # fmt: skip
    tmp_path.mkdir(parents=True, exist_ok=True)
    settings_path = tmp_path / "settings.json"
    settings_path.write_text(json.dumps(settings))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes = []
    for rank in range(world_size):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
               "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # fmt: skip
        command = [sys.executable, "-m", "tests.training.test_distributed", str(settings_path)]
        processes.append(subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))  # fmt: skip
    finished = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(
                timeout=LAUNCH_TIMEOUT_S
            )  # raises (fails the test) on a hang
            finished.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    finally:
        for process in processes:  # a hung rank must not outlive the test
            if process.poll() is None:
                process.kill()
                process.wait()
    return finished


def rank_records(out: Path, world_size: int = 2) -> list[dict[str, Any]]:
    return [json.loads((out / f"rank-{rank}.json").read_text()) for rank in range(world_size)]


def test_shards_are_disjoint_strided_and_cover_the_split():
    shards = [shard_ids(11, RankInfo(rank, 3)) for rank in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    with pytest.raises(ValueError, match="fewer than the 3 ranks"):
        shard_ids(2, RankInfo(0, 3))


def test_epoch_seeds_differ_by_epoch_and_rank_and_are_reproducible():
    seeds = {epoch_seeds(7, epoch, rank) for epoch in range(3) for rank in range(4)}
    assert len(seeds) == 12 and epoch_seeds(7, 1, 2) == epoch_seeds(7, 1, 2)


def test_a_shorter_shard_repeats_its_last_batch_with_weight_zero():
    steps = optimizer_steps([[0, 1], [2, 3], [4]], batches_everywhere=4, accumulate_steps=3)
    assert steps == [[([0, 1], 1.0), ([2, 3], 1.0), ([4], 1.0)], [([4], 0.0)]]


def test_bad_distributed_options_are_refused():
    with pytest.raises(ValueError, match="accumulate_steps must be at least 1"):
        TrainingConfig(accumulate_steps=0)
    with pytest.raises(ValueError, match="distributed_backend must be"):
        TrainingConfig(distributed_backend="mpi")
    with pytest.raises(ValueError, match="distributed_timeout_s must be positive"):
        TrainingConfig(distributed_timeout_s=0)


def test_nproc_relaunches_the_same_command_under_torchrun():
    args = build_parser().parse_args(
        [
            "train",
            "r.toml",
            "--nproc",
            "2",
            "--set",
            "training.seed=3",
            "--smoke",
            "-q",
            "--max-memory",
            "1KiB",
        ]
    )
    command = torchrun_command(args.nproc, _rank_arguments(args))
    assert command[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    rank_argv = command[command.index("-c") + 2 :]
    assert rank_argv == [
        "train",
        "r.toml",
        "--set=training.seed=3",
        "--smoke",
        "--quiet",
        "--max-memory=1024",
    ]
    again = build_parser().parse_args(rank_argv)
    assert (again.nproc, again.overrides, again.max_memory) == (None, ["training.seed=3"], 1024)


def test_accumulated_steps_equal_one_big_batch(data_dir, tmp_path):
    corpus = small_corpus(data_dir)
    settings = {"epochs": 2, "shuffle": False}
    big = tiny_tagger(corpus, dropout=False)
    Trainer(big, corpus).train(tmp_path / "big", **train_options({**settings, "mini_batch_size": 8}))
    accumulated = tiny_tagger(corpus, dropout=False)
    Trainer(accumulated, corpus).train(
        tmp_path / "acc", accumulate_steps=2, **train_options({**settings, "mini_batch_size": 4})
    )
    for (name, a), (_, b) in zip(big.state_dict().items(), accumulated.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.slow  # two processes that import torch and Flair
def test_two_ranks_train_like_one_process_with_the_same_effective_batch(data_dir, tmp_path):
    """2 ranks × batch 4 in file order against 1 process × batch 8, dropouts off.

    Shards are strided, so step k of the two ranks covers sentences 8k…8k+7, exactly the one process's batch
    k; the loss is a sum and DDP's average is scaled back to a sum, so the gradients are equal up to the order
    of float additions. With shuffling on, each rank shuffles only its own shard, so batch composition differs
    from any single-process order; with dropout on, the masks come from per-rank streams. Neither can then
    match one process, and this test turns both off.
    """
    ranks = launch(tmp_path / "ddp", data_dir)
    assert [r.returncode for r in ranks] == [0, 0], ranks[0].stderr[-3000:] + ranks[1].stderr[-3000:]
    records = rank_records(tmp_path / "ddp")
    shards = [set(record["shard"]) for record in records]
    assert not shards[0] & shards[1] and shards[0] | shards[1] == set(range(N_TRAIN))
    corpus = small_corpus(data_dir)
    for rank, record in enumerate(records):
        train_cache = record["caches"]["train"]
        tokens_in_shard = sum(len(corpus.train[i]) for i in record["shard"])
        # One extra zero row serves as padding in every store.
        assert train_cache["tokens"] == tokens_in_shard
        assert train_cache["nbytes"] == (tokens_in_shard + 1) * train_cache["dim"] * 2  # float16
        assert ("dev" in record["caches"]) == (rank == 0)  # rank 0 alone evaluates
    assert len(records[0]["checksums"]) == 2 * N_TRAIN // 8
    assert records[0]["checksums"] == records[1]["checksums"]  # identical replicas after every step

    single = tiny_tagger(corpus, dropout=False)
    Trainer(single, corpus).train(
        tmp_path / "one", **train_options({"epochs": 2, "shuffle": False, "mini_batch_size": 8})
    )
    distributed = SequenceTagger.load(tmp_path / "ddp" / "final-model").state_dict()
    trained = {
        name: tensor for name, tensor in single.state_dict().items() if not name.startswith("embeddings.")
    }
    for name, tensor in trained.items():  # float sums in another order: equal to ~1e-5 relative
        torch.testing.assert_close(tensor, distributed[name], rtol=1e-3, atol=1e-4, msg=name)
    results = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert [r["epoch"] for r in results["history"]] == [1, 2]


@pytest.mark.slow  # two processes that import torch and Flair
def test_a_crashed_rank_stops_the_other_with_a_clear_error_and_resume_continues(data_dir, tmp_path):
    """Rank 1 dies at the start of epoch 2 (shuffle and dropout on); rank 0 must fail, not hang."""
    out = tmp_path / "run"
    ranks = launch(out, data_dir, epochs=3, shuffle=True, dropout=True, crash_rank=1, crash_epoch=1)
    assert ranks[1].returncode == 3
    assert ranks[0].returncode != 0
    assert "LostRankError: rank 0 of 2: lost contact with the other ranks" in ranks[0].stderr
    assert "resume=True" in ranks[0].stderr
    records = rank_records(out)
    # Epoch 1 completed on both (48 / 2 ranks / batch 4 = 6 steps) with identical replicas after each step.
    assert records[0]["checksums"] == records[1]["checksums"] and len(records[1]["checksums"]) == 6

    # Resume with a different number of ranks: one process takes over the whole split after epoch 1.
    corpus = small_corpus(data_dir)
    result = Trainer(tiny_tagger(corpus, dropout=True), corpus).train(
        out, **train_options({"epochs": 3, "shuffle": True, "mini_batch_size": 4, "resume": True})
    )
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert (out / "final-model").is_dir()


if __name__ == "__main__":
    worker(sys.argv[1])
