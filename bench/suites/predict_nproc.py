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
NPROCS = (1, 2)

DESCRIPTION = f"""\
`embedcache predict --model M TEXT --output OUT --nproc N` over the first {{lines:,}} lines of
`text/social_media_en.txt` (raw text, one document per line, split and tokenised as Flair does), with a small
random-weight model so the run takes minutes on a CPU: forward and backward character LMs of hidden
{LM_HIDDEN} (seeds 0 and 1), a BiLSTM of hidden {TAGGER_HIDDEN} with a CRF over WNUT-17-like BIOES tags.
`--nproc 1` is the ordinary single process with every core (`--threads` = cores); `--nproc 2` starts two
ranks with `torch.distributed.run` (gloo), each with half the cores (the default under `--nproc`), each
tagging a contiguous half of the documents; rank 0 joins the parts.
One run each; the two outputs are compared byte for byte."""


def save_model(directory: Path) -> Path:
    lms = [
        CharLMEncoder(random_char_lm(forward, LM_HIDDEN, seed=i)) for i, forward in enumerate((True, False))
    ]
    torch.manual_seed(0)
    tags = TagDictionary.for_labels(["corporation", "location", "person", "product"], "BIOES")
    path = directory / "model"
    ec.SequenceTagger(lms, tags, "ner", hidden_size=TAGGER_HIDDEN).save(path)
    return path


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
        for nproc in NPROCS:
            output = Path(folder) / f"nproc{nproc}.conll"
            arguments = [
                "predict",
                "--model",
                str(model),
                str(text),
                "--output",
                str(output),
                "--device",
                "cpu",
            ]
            threads = [f"--threads={os.cpu_count()}"] if nproc == 1 else []  # ranks: cores ÷ N each
            runs[nproc] = run_cli([*arguments, "--quiet", f"--nproc={nproc}", *threads])
            log.info("--nproc %d: %.1f s", nproc, runs[nproc][0])
        identical = (Path(folder) / "nproc1.conll").read_bytes() == (
            Path(folder) / "nproc2.conll"
        ).read_bytes()
    if not identical:
        raise RuntimeError("predict_nproc suite: --nproc 2 wrote other bytes than --nproc 1")
    one = runs[1][0]
    rows = [
        [str(n), format_seconds(s), f"{lines / s:,.0f}", format_ratio(one / s), f"{rss / 2**20:,.0f}"]
        for n, (s, rss) in runs.items()
    ]
    notes = [
        "Speed-up = wall time of --nproc 1 ÷ this run's. Peak RSS: the largest process of the run's "
        "process tree (a rank under torchrun), not the sum over ranks.",
        f"Outputs byte-identical: {identical}. Threads: {os.cpu_count()} for --nproc 1, "
        f"{max(1, (os.cpu_count() or 1) // 2)} per rank for --nproc 2.",
    ]
    return SuiteResult(
        suite="predict_nproc",
        title="`predict_nproc`: `embedcache predict --nproc 2` vs `--nproc 1` on the CPU",
        description=DESCRIPTION.format(lines=lines) + quick_run_note(config.quick, f"{QUICK_LINES:,} lines"),
        tables=[
            Table(
                "Wall time, one run each",
                ["--nproc", "wall", "lines/s", "speed-up", "peak RSS (MiB)"],
                rows,
                notes,
            )
        ],
        data={"lines": lines, "runs": runs, "identical": identical},
    )
