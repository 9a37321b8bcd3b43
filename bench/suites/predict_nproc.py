"""Suite ``predict_nproc``: ``embedcache predict --nproc 2`` against ``--nproc 1`` over social-media text.

Each run is a fresh command-line process; its wall time includes start-up and loading the model (twice with
two ranks, plus torchrun's launch), which is what a user waits for.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import torch

import embedcache as ec
from bench.commands import run_cli
from bench.harness import BenchConfig, Suite
from bench.specs import SOCIAL_MEDIA_TEXT
from bench.suites.predict_nproc_results import LM_HIDDEN, TAGGER_HIDDEN, NprocPlan, render
from embedcache.recipes import random_char_lm

log = logging.getLogger(__name__)

LINES, QUICK_LINES = 50_000, 2_000


def save_model(directory: Path) -> Path:
    lms = [
        ec.CharLMEncoder(random_char_lm(forward, LM_HIDDEN, seed=i))
        for i, forward in enumerate((True, False))
    ]
    torch.manual_seed(0)
    tags = ec.TagDictionary.for_labels(["corporation", "location", "person", "product"], "BIOES")
    path = directory / "model"
    ec.SequenceTagger(lms, tags, "ner", hidden_size=TAGGER_HIDDEN).save(path)
    return path


def plan(config: BenchConfig) -> NprocPlan:
    return NprocPlan(QUICK_LINES if config.quick else LINES, _cases(), config.quick)


def _cases() -> list[tuple[str, int, int | None]]:
    """``(label, --nproc, --threads)``: one process on one core and on every core, then two ranks (whose
    default is cores ÷ 2 threads each)."""
    cores = os.cpu_count() or 1
    return [
        ("--nproc 1, 1 thread", 1, 1),
        (f"--nproc 1, {cores} threads", 1, cores),
        (f"--nproc 2, {max(1, cores // 2)} thread(s) each", 2, None),
    ]


def measure(plan: NprocPlan, config: BenchConfig) -> dict[str, tuple[float, int]]:
    lines = plan.lines
    source = config.data_dir / SOCIAL_MEDIA_TEXT
    with tempfile.TemporaryDirectory(prefix="bench-nproc-") as folder:
        model = save_model(Path(folder))
        text = Path(folder) / "input.txt"
        with open(source, encoding="utf-8") as full:
            text.write_text(
                "".join(line for _, line in zip(range(lines), full, strict=False)), encoding="utf-8"
            )
        runs = {}
        for label, nproc, threads in plan.cases:
            output = Path(folder) / f"{label}.conll"
            arguments = ["predict", "--model", str(model), str(text), "--output", str(output), "--quiet",
                         "--backend=torch"]  # fmt: skip
            threads_option = [] if threads is None else [f"--threads={threads}"]
            runs[label] = run_cli([*arguments, "--device=cpu", f"--nproc={nproc}", *threads_option])
            log.info("%s: %.1f s", label, runs[label][0])
        outputs = {(Path(folder) / f"{label}.conll").read_bytes() for label in runs}
    if len(outputs) != 1:
        raise RuntimeError("predict_nproc suite: the runs wrote different bytes")
    return runs


SUITE = Suite("predict_nproc", ("random",), plan, measure, render)
