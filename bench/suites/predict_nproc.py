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
from bench.harness import BenchConfig
from bench.report import SuiteResult, Table, format_ratio, format_seconds, quick_run_note
from bench.suites.pipeline import run_cli
from embedcache.embeddings.charlm import CharLMEncoder
from embedcache.models.labels import TagDictionary
from embedcache.recipes import random_char_lm

log = logging.getLogger(__name__)

LINES, QUICK_LINES = 50_000, 2_000
LM_HIDDEN, TAGGER_HIDDEN = 128, 64

DESCRIPTION = f"""\
`embedcache predict --model M TEXT --output OUT --nproc N` over the first {{lines:,}} lines of
`text/social_media_en.txt` (raw text, one document per line, split and tokenised as Flair does), with a small
random-weight model so the run takes minutes on a CPU: forward and backward character LMs of hidden
{LM_HIDDEN} (seeds 0 and 1), a BiLSTM of hidden {TAGGER_HIDDEN} with a CRF over WNUT-17-like BIOES tags.
`--nproc 1` is the ordinary single process, run with one thread and with as many threads as cores;
`--nproc 2` starts two ranks with `torch.distributed.run` (gloo), each with half the cores (the default
under `--nproc`), each tagging a contiguous half of the documents; rank 0 joins the parts. On a busy
machine a multi-threaded process suffers most (a parallel region waits for a descheduled thread).
One run each; the outputs are compared byte for byte."""


def save_model(directory: Path) -> Path:
    lms = [
        CharLMEncoder(random_char_lm(forward, LM_HIDDEN, seed=i)) for i, forward in enumerate((True, False))
    ]
    torch.manual_seed(0)
    tags = TagDictionary.for_labels(["corporation", "location", "person", "product"], "BIOES")
    path = directory / "model"
    ec.SequenceTagger(lms, tags, "ner", hidden_size=TAGGER_HIDDEN).save(path)
    return path


def _cases() -> list[tuple[str, int, int | None]]:
    """``(label, --nproc, --threads)``: one process on one core and on every core, then two ranks (whose
    default is cores ÷ 2 threads each)."""
    cores = os.cpu_count() or 1
    return [
        ("--nproc 1, 1 thread", 1, 1),
        (f"--nproc 1, {cores} threads", 1, cores),
        (f"--nproc 2, {max(1, cores // 2)} thread(s) each", 2, None),
    ]


def run(config: BenchConfig) -> SuiteResult:
    lines = QUICK_LINES if config.quick else LINES
    source = config.data_dir / "text" / "social_media_en.txt"
    with tempfile.TemporaryDirectory(prefix="bench-nproc-") as folder:
        model = save_model(Path(folder))
        text = Path(folder) / "input.txt"
        with open(source, encoding="utf-8") as full:
            text.write_text(
                "".join(line for _, line in zip(range(lines), full, strict=False)), encoding="utf-8"
            )
        runs = {}
        for label, nproc, threads in _cases():
            output = Path(folder) / f"{label}.conll"
            arguments = ["predict", "--model", str(model), str(text), "--output", str(output), "--quiet"]
            threads_option = [] if threads is None else [f"--threads={threads}"]
            runs[label] = run_cli([*arguments, "--device=cpu", f"--nproc={nproc}", *threads_option])
            log.info("%s: %.1f s", label, runs[label][0])
        outputs = {(Path(folder) / f"{label}.conll").read_bytes() for label in runs}
    if len(outputs) != 1:
        raise RuntimeError("predict_nproc suite: the runs wrote different bytes")
    first = next(iter(runs.values()))[0]
    rows = [
        [label, format_seconds(s), f"{lines / s:,.0f}", format_ratio(first / s), f"{rss / 2**20:,.0f}"]
        for label, (s, rss) in runs.items()
    ]
    notes = [
        "Speed-up = wall time of the first row ÷ this run's. Peak RSS: the largest process of the run's "
        "process tree (a rank under torchrun), not the sum over ranks.",
        "Outputs byte-identical across the runs: checked (the suite fails otherwise).",
    ]
    return SuiteResult(
        suite="predict_nproc",
        title="`predict_nproc`: `embedcache predict --nproc 2` vs `--nproc 1` on the CPU",
        description=DESCRIPTION.format(lines=lines) + quick_run_note(config.quick, f"{QUICK_LINES:,} lines"),
        tables=[
            Table(
                "Wall time, one run each",
                ["run", "wall", "lines/s", "speed-up", "peak RSS (MiB)"],
                rows,
                notes,
            )
        ],
        data={"lines": lines, "runs": runs},
    )
