"""Kills training with SIGKILL at chosen moments, resumes it, and checks every file a reader would open.

Run as a script by ``test_crash_safety.py``::

    python tests/reliability/train_worker.py DATA_DIR WORK_DIR REPORT --seeds 0 1 2 [--modes disk gpu]

One warm process (imports paid once) forks a child per training attempt. Each child runs
``Trainer.train(..., resume=True)`` on 30 WNUT-17 sentences with two hidden-16 random char LMs, in ``disk``
storage (a persisted cache under ``WORK_DIR``) and in ``gpu`` storage (the compute device: here the CPU).
The child reports each phase it enters on a pipe. A *targeted* kill plan makes the child stop inside that
phase (test code patched into the child only: the n-th LM batch of the cache build, a cache's sentence
table half written, the n-th training step, half a checkpoint or ``tagger.safetensors`` written, a
finished model directory not yet swapped in, or swapped in with the old one not yet deleted) and say
``paused``; the parent then sends SIGKILL. A ``random`` plan kills after a random delay, wherever the
child is. After every kill the parent opens each path a reader uses: the checkpoint,
``best-model``, ``final-model`` and every published cache directory must each be absent or valid. After
the kills of a seed, an unkilled child resumes to the end; its final model must load, predict, and equal
the weights of an uninterrupted run. Everything is written to ``REPORT`` (JSON) for the test to assert on.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from safetensors.torch import save as save_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for tests.conftest

import embedcache as ec
import embedcache.atomic as atomic
import embedcache.models.serialization as serialization
from embedcache.cache import EmbeddingCache
from embedcache.cache.persist import open_cache
from embedcache.data.corpus import Corpus
from embedcache.data.datasets import WNUT17
from embedcache.inference.tagger import SequenceTagger
from embedcache.models.labels import TagDictionary
from embedcache.training import Trainer
from embedcache.training.checkpoint import load_checkpoint
from tests.conftest import make_lm

MAX_EPOCHS, BATCH_SIZE = 3, 8
N_TRAIN, N_EVAL = 30, 8
STEPS_PER_EPOCH = -(-N_TRAIN // BATCH_SIZE)
CHILD_TIMEOUT_S = 120.0
MODELS = ("best-model", "final-model")
# Kill plans of one seed, in order: the cache plans first, while the persisted cache does not exist yet;
# "random" kills after a random delay, "finish" lets the run end (so that "model-swap" finds a model to
# replace), every other plan stops the child in that phase.
PLANS = {
    "disk": ("cache-build", "cache-write", "random", "epoch", "checkpoint-write", "model-write",
             "model-publish", "finish", "model-swap"),
    "gpu": ("cache-build", "random", "epoch", "checkpoint-write", "epoch", "model-write", "model-publish",
            "finish", "model-swap"),
}  # fmt: skip


@dataclass
class Kill:
    """One attempt: the plan, where the child was when it died, and what the reader-side checks found."""

    mode: str
    seed: int
    plan: str
    pause_at: int
    landed: str = ""
    killed: bool = False
    exit_code: int | None = None
    problems: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)


def corpus(data_dir: Path) -> Corpus:
    return WNUT17(data_dir / "wnut17").subset(N_TRAIN, N_EVAL)


def new_tagger(data: Corpus) -> SequenceTagger:
    """The same initial weights in every process: forward and backward hidden-16 LMs, BiLSTM of 8."""
    tags = TagDictionary.from_sentences([s.tags for s in data.train + data.dev + data.test], "BIOES")
    torch.manual_seed(0)
    embeddings = [
        ec.CharLMEmbeddings(make_lm(True, 16, seed=1)),
        ec.CharLMEmbeddings(make_lm(False, 16, seed=2)),
    ]
    return SequenceTagger(embeddings, tags, "ner", hidden_size=8)


def train(data: Corpus, out: Path, mode: str, cache: Path) -> None:
    Trainer(new_tagger(data), data).train(
        out, storage_mode=mode, max_epochs=MAX_EPOCHS, mini_batch_size=BATCH_SIZE, seed=7, progress=False,
        cache_dir=cache if mode == "disk" else None, resume=True,
    )  # fmt: skip


class Probe:
    """In the child: reports phases on the pipe, and stops at the ``pause_at``-th event of ``plan``."""

    def __init__(self, fd: int, plan: str, pause_at: int) -> None:
        self.fd, self.plan, self.pause_at = fd, plan, pause_at
        self.events: dict[str, int] = {}
        self.building = False

    def mark(self, phase: str) -> None:
        os.write(self.fd, f"{phase}\n".encode())

    def due(self, phase: str) -> bool:
        """Count an event of ``phase``; True when the child must stop at this one."""
        self.mark(phase)
        self.events[phase] = self.events.get(phase, 0) + 1
        return phase == self.plan and self.events[phase] == self.pause_at

    def pause(self) -> NoReturn:
        os.write(self.fd, b"paused\n")
        time.sleep(CHILD_TIMEOUT_S)  # the parent kills us long before
        os._exit(3)


def write_half(write: Callable[[io.BytesIO], None], target: io.RawIOBase | io.BufferedIOBase | str) -> None:
    """Serialise with ``write``, then put only the first half of the bytes into ``target``."""
    buffer = io.BytesIO()
    write(buffer)
    half = buffer.getvalue()[: buffer.tell() // 2]
    if isinstance(target, (str, Path)):
        Path(target).write_bytes(half)
    else:
        target.write(half)
        target.flush()


def install_probe(probe: Probe) -> None:
    """Patch this (child) process: phase reports everywhere, and the stop of the planned phase."""
    original_build = EmbeddingCache.build.__func__

    def build(cls, *args, **kwargs):
        probe.mark("cache-build")
        probe.building = True
        try:
            return original_build(cls, *args, **kwargs)
        finally:
            probe.building = False
            probe.mark("training")

    EmbeddingCache.build = classmethod(build)

    original_np_save = np.save

    def np_save(file, array, *args, **kwargs):
        if probe.due("cache-write"):
            write_half(lambda b: original_np_save(b, array, *args, **kwargs), str(file))
            probe.pause()
        return original_np_save(file, array, *args, **kwargs)

    np.save = np_save  # only the cache's sentence table is saved with numpy

    original_torch_save = torch.save

    def torch_save(obj, stream, *args, **kwargs):
        if probe.due("checkpoint-write"):
            write_half(lambda b: original_torch_save(obj, b, *args, **kwargs), stream)
            probe.pause()
        original_torch_save(obj, stream, *args, **kwargs)
        probe.mark("training")

    torch.save = torch_save

    original_save_file = serialization.save_file

    def save_file(tensors, filename, *args, **kwargs):
        if probe.due("model-write"):
            write_half(lambda b: b.write(save_bytes(tensors)), str(filename))
            probe.pause()
        return original_save_file(tensors, filename, *args, **kwargs)

    serialization.save_file = save_file

    original_swap_in = atomic._swap_in

    def swap_in(staging, target):
        if target.name not in MODELS:  # a cache
            return original_swap_in(staging, target)
        if probe.due("model-publish"):
            probe.pause()  # the new model complete under its temporary name, the old one in place
        original_swap_in(staging, target)
        probe.mark("training")

    atomic._swap_in = swap_in

    original_exchange = atomic._exchange

    def exchange(first, second):
        swapped = original_exchange(first, second)
        if swapped and Path(second).name in MODELS and probe.due("model-swap"):
            probe.pause()  # the new model in place, the old one not yet deleted
        return swapped

    atomic._exchange = exchange

    original_load = SequenceTagger.load.__func__

    def load(cls, *args, **kwargs):
        probe.mark("final-test")
        return original_load(cls, *args, **kwargs)

    SequenceTagger.load = classmethod(load)


def instrument_tagger_steps(probe: Probe) -> None:
    """Stop at the n-th training step or LM batch of the cache build (patched on the class, in the child)."""
    original_loss = SequenceTagger.loss

    def loss(self, *args):
        if probe.due("epoch"):
            probe.pause()
        return original_loss(self, *args)

    SequenceTagger.loss = loss

    from embedcache.embeddings.charlm import CharLMEncoder

    original_hidden_states = CharLMEncoder.hidden_states

    def hidden_states(self, strings):
        if probe.building and probe.due("cache-build"):
            probe.pause()
        return original_hidden_states(self, strings)

    CharLMEncoder.hidden_states = hidden_states


def child(data: Corpus, out: Path, mode: str, cache: Path, fd: int, plan: str, pause_at: int) -> NoReturn:
    code = 0
    try:
        probe = Probe(fd, plan, pause_at)
        probe.mark("start")
        install_probe(probe)
        instrument_tagger_steps(probe)
        train(data, out, mode, cache)
        probe.mark("done")
    except BaseException:
        traceback.print_exc()
        code = 1
    os._exit(code)


def run_child(
    data: Corpus, out: Path, mode: str, cache: Path, plan: str, pause_at: int, kill_after_s: float | None
) -> tuple[list[str], bool, int | None]:
    """Fork a training child; kill it when it pauses (or after ``kill_after_s``). Returns the phases it
    reported, whether it was killed, and its exit code when it ended by itself."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        child(data, out, mode, cache, write_fd, plan, pause_at)
    os.close(write_fd)
    started = time.monotonic()
    deadline = started + (kill_after_s if kill_after_s is not None else CHILD_TIMEOUT_S)
    received, killed = b"", False
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while True:
            ready, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:  # the random delay is over (or the child hangs)
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
            chunk = pipe.read(4096)
            received += chunk
            if not chunk:  # the child ended by itself
                break
            if b"paused\n" in received:
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
        _, status = os.waitpid(pid, 0)
        while chunk := pipe.read(65536):  # what the child wrote before it died
            received += chunk
    phases = [line for line in received.decode().splitlines() if line]
    return phases, killed, None if killed else os.waitstatus_to_exitcode(status)


def reader_problems(out: Path, cache: Path) -> list[str]:
    """Every path a reader opens must be absent or valid: checkpoint, both models, published caches."""
    problems = []
    try:
        load_checkpoint(out)
    except ValueError as error:
        problems.append(str(error))
    for name in MODELS:
        if (out / name).exists():
            try:
                SequenceTagger.load(out / name)
            except Exception as error:  # any failure to load is a finding
                problems.append(f"{out / name}: {type(error).__name__}: {error}")
    if cache.is_dir():
        for directory in cache.iterdir():
            if not directory.name.startswith("."):
                try:
                    open_cache(directory)
                except Exception as error:
                    problems.append(f"{directory}: {type(error).__name__}: {error}")
    return problems


def leftovers(out: Path, cache: Path) -> list[str]:
    """Hidden temporary names (``.checkpoint.*``, ``.best-model.*``, ``.<fingerprint>.tmp-*``), not locks."""
    names = [p.name for p in out.iterdir() if p.name.startswith(".")] if out.is_dir() else []
    if cache.is_dir():
        names += [p.name for p in cache.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]
    return sorted(names)


def remaining_steps(out: Path) -> tuple[int, int]:
    """Training steps and epochs the next resumed run still has to do, from the checkpoint."""
    state = load_checkpoint(out)
    epochs_left = MAX_EPOCHS - (state["epochs_done"] if state else 0)
    return epochs_left * STEPS_PER_EPOCH, epochs_left


def pause_point(plan: str, out: Path, rng: random.Random) -> int:
    """Which event of the planned phase the child stops at (1-based)."""
    steps_left, epochs_left = remaining_steps(out)
    if plan == "epoch":
        return rng.randint(1, max(steps_left, 1))
    if plan == "checkpoint-write":
        return rng.randint(1, max(epochs_left, 1))
    if plan == "cache-build":
        return rng.randint(1, 4)  # LM batches of the first cache built (two LMs, chars_per_batch batches)
    return 1  # cache-write, model-write, model-publish, model-swap: the first one of the run


def weights_equal(a: SequenceTagger, b: SequenceTagger) -> bool:
    return all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def run_seed(data: Corpus, work: Path, mode: str, seed: int, reference: SequenceTagger, run_s: float) -> dict:
    rng = random.Random(seed)
    out, cache = work / f"{mode}-{seed}" / "out", work / f"{mode}-{seed}" / "cache"
    kills = []
    for plan in PLANS[mode]:
        attempt = Kill(mode, seed, plan, pause_at=pause_point(plan, out, rng))
        delay = rng.uniform(0.0, run_s) if plan == "random" else None  # "finish": never paused
        phases, attempt.killed, attempt.exit_code = run_child(
            data, out, mode, cache, plan, attempt.pause_at, delay
        )
        attempt.landed = ([p for p in phases if p != "paused"] or ["before-start"])[-1]
        attempt.problems = reader_problems(out, cache)
        attempt.leftovers = leftovers(out, cache)
        kills.append(asdict(attempt))
    _, _, exit_code = run_child(data, out, mode, cache, "finish", 0, None)
    final: dict[str, Any] = {"exit_code": exit_code, "problems": reader_problems(out, cache)}
    if exit_code == 0:
        model = SequenceTagger.load(out / "final-model")
        final["equal_to_uninterrupted"] = weights_equal(model, reference)
        predictions = model.predict([s.tokens for s in data.test])
        final["predicted_tokens"] = sum(len(p.tags) for p in predictions)
        final["test_tokens"] = sum(len(s) for s in data.test)
        final["best_model_loads"] = SequenceTagger.load(out / "best-model") is not None
        final["epochs"] = [r["epoch"] for r in json.loads((out / "results.json").read_text())["history"]]
    final["leftovers"] = leftovers(out, cache)
    return {"mode": mode, "seed": seed, "kills": kills, "final": final}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("report", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--modes", nargs="+", default=["disk", "gpu"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = corpus(args.data_dir)
    results = []
    for mode in args.modes:
        started = time.monotonic()
        reference_out = args.work / f"{mode}-reference"
        _, _, code = run_child(data, reference_out, mode, reference_out / "cache", "finish", 0, None)
        run_s = time.monotonic() - started
        assert code == 0, f"the uninterrupted {mode} run failed"
        reference = SequenceTagger.load(reference_out / "final-model")
        for seed in args.seeds:
            results.append(run_seed(data, args.work, mode, seed, reference, run_s))
    args.report.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
