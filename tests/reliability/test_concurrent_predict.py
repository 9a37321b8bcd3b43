"""Two processes predicting with one model directory and one disk cache directory at the same time.

Each process (``predict_worker.run``) loads the saved tagger, embeds its input through the persistent disk
cache and tags every sentence from it. The first build is held half-way (a gated embedder) while the second
process arrives; the second must wait on the build lock and then reuse the finished cache, never read the
half-written one. The same holds when the cache there is corrupt and is being rebuilt. Both outputs must
be complete and equal to a run of the same code alone in its own process (cross-process tests of the
cache layer itself are in ``tests/cache/test_persist.py``).
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.forkserver
import time
from pathlib import Path

import pytest
import torch

import embedcache as ec
from embedcache.data.conll import read_column_file
from embedcache.inference.tagger import SequenceTagger
from embedcache.models.labels import TagDictionary
from tests.conftest import make_lm
from tests.reliability import predict_worker

N_SENTENCES = 60


@pytest.fixture(scope="module")
def fork_server() -> multiprocessing.context.ForkServerContext:
    """Workers fork from a server that imported ``predict_worker`` (torch, flair) once."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.reliability.predict_worker"])
    multiprocessing.forkserver.ensure_running()
    return context


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Path]:
    """A saved model, an input file, and the tags a process working alone writes for it."""
    root = tmp_path_factory.mktemp("concurrent")
    torch.manual_seed(0)
    embedders = [
        ec.CharLMEmbeddings(make_lm(True, 16, seed=31)),
        ec.CharLMEmbeddings(make_lm(False, 16, seed=32)),
    ]
    tags = TagDictionary.for_labels(["person", "location", "group"], "BIO")
    SequenceTagger(embedders, tags, "ner", hidden_size=8).save(root / "model")
    sentences = list(read_column_file(data_dir / "wnut17" / "train.conll"))[:N_SENTENCES]
    lines: list[str] = []
    for sentence in sentences:
        lines += [f"{token}\tO\n" for token in sentence.tokens] + ["\n"]
    (root / "input.conll").write_text("".join(lines), encoding="utf-8")
    paths = {"model": root / "model", "corpus": root / "input.conll", "alone": root / "alone.json"}
    predict_worker.run(
        paths["model"], root / "cache-alone", paths["corpus"], paths["alone"], root / "alone.log"
    )
    return paths


def start(context, shared: dict[str, Path], cache: Path, name: str, **options: Path):
    out, log = cache.parent / f"{name}.json", cache.parent / f"{name}.log"
    log.touch()
    arguments = (shared["model"], cache, shared["corpus"], out, log)
    process = context.Process(target=predict_worker.run, args=arguments, kwargs=options, daemon=True)
    process.start()
    return process, out, log


def wait_for(condition, what: str, *processes, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if any(p.exitcode not in (None, 0) for p in processes):
            pytest.fail(f"a worker failed before {what}")
        if time.monotonic() > deadline:
            for process in processes:
                process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def finish(process, out: Path, log: Path) -> dict:
    process.join(timeout=180)
    assert process.exitcode == 0, log.read_text()
    return json.loads(out.read_text(encoding="utf-8"))


def building(cache: Path) -> bool:
    return any((p / "vectors.bin").exists() for p in cache.glob(".*.tmp-*"))


def published(cache: Path) -> list[Path]:
    return [p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")]


def run_while_the_first_build_is_held(
    context, shared: dict[str, Path], cache: Path
) -> tuple[dict, dict, str]:
    gate, go = cache.parent / "gate", cache.parent / "go"
    first, first_out, first_log = start(context, shared, cache, "first", gate=gate)
    second, second_out, second_log = start(context, shared, cache, "second", start=go)
    wait_for(lambda: building(cache), "the first build to start", first, second)
    go.touch()  # the second process arrives while the first build is half-way
    wait_for(
        lambda: "waiting for it" in second_log.read_text(), "the second to wait on the lock", first, second
    )
    assert not second_out.exists() and building(cache)
    gate.touch()
    return finish(first, first_out, first_log), finish(second, second_out, second_log), first_log.read_text()


@pytest.mark.slow
def test_two_predicting_processes_share_one_model_and_one_cache(fork_server, shared, tmp_path):
    cache = tmp_path / "cache"
    first, second, _ = run_while_the_first_build_is_held(fork_server, shared, cache)
    alone = json.loads(shared["alone"].read_text(encoding="utf-8"))
    assert len(alone["tags"]) == N_SENTENCES and not alone["reused"]
    assert (first["reused"], second["reused"]) == (False, True)
    assert first["tags"] == second["tags"] == alone["tags"]
    assert len(published(cache)) == 1 and not list(cache.glob(".*.tmp-*"))


@pytest.mark.slow
def test_a_cache_being_rebuilt_is_not_read_half_built(fork_server, shared, tmp_path):
    cache = tmp_path / "cache"
    predict_worker.run(
        shared["model"], cache, shared["corpus"], tmp_path / "before.json", tmp_path / "before.log"
    )
    [directory] = published(cache)
    with (directory / "vectors.bin").open("r+b") as vectors:  # a non-zero padding row: a corrupt cache
        vectors.seek(-4, 2)
        vectors.write(b"\x01\x02\x03\x04")
    first, second, first_log = run_while_the_first_build_is_held(fork_server, shared, cache)
    assert "discarding a corrupt embedding cache" in first_log
    alone = json.loads(shared["alone"].read_text(encoding="utf-8"))
    assert (first["reused"], second["reused"]) == (False, True)
    assert first["tags"] == second["tags"] == alone["tags"]
    assert published(cache) == [directory] and not list(cache.glob(".*.tmp-*"))
