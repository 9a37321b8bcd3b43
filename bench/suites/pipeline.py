"""Suite ``pipeline``: a UPOS and a WNUT-17 NER tagger over the same two char LMs, as one pipeline (one LM
pass per batch, one copy of the LMs) against the two taggers run separately.

Nothing needs training: both LMs and both taggers have random, seeded weights (speed and bytes depend on the
sizes, not on the values). Each tagger is saved as its own model directory with its own copy of the LM files,
as two trained models would be; the pipeline finds the copies equal by fingerprint and keeps one.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import embedcache as ec
from bench.harness import BenchConfig, Case, time_cases
from bench.inputs import BATCH_SIZE
from bench.report import SuiteResult, Table, format_ratio, format_seconds, quick_run_note
from bench.suites.predict import cli_executable, entity_types
from embedcache.data.datasets import WNUT17
from embedcache.embeddings.charlm import CharLMEncoder
from embedcache.inference.tagger_group import WeightBytes
from embedcache.models.labels import TagDictionary
from embedcache.recipes import random_char_lm

log = logging.getLogger(__name__)

LM_HIDDEN = 2048  # as the news LMs under Flair's pos and ner models
TAGGER_HIDDEN = 256
CALL_SENTENCES = 128
QUICK_SENTENCES = 128
CLI_SENTENCES = 256
UPOS = [
    "ADJ",
    "ADP",
    "ADV",
    "AUX",
    "CCONJ",
    "DET",
    "INTJ",
    "NOUN",
    "NUM",
    "PART",
    "PRON",
    "PROPN",
    "PUNCT",
    "SCONJ",
    "SYM",
    "VERB",
    "X",
]

DESCRIPTION = f"""\
Two taggers over WNUT-17 test ({{n}} sentences): UPOS (17 plain tags) and NER (WNUT-17's six types, BIOES),
each a BiLSTM of hidden {TAGGER_HIDDEN} with re-projection and a CRF over the same forward and backward
character LMs (hidden {LM_HIDDEN}, 1 layer, random weights seeded 0 and 1: speed and bytes depend on sizes,
not values). Each tagger is saved as its own model directory with its own copy of the LM files, as two
trained models would be.

**In-process**: calls of {CALL_SENTENCES} sentences, batches of {BATCH_SIZE}, storage `none`. "Separate" is
`upos.predict(call)` then `ner.predict(call)` on the two taggers loaded one by one (two copies of the LMs,
two LM passes); "pipeline" is `ec.Pipeline([upos, ner]).predict(call)` on a second pair loaded the same way
(the LMs deduplicated by fingerprint: one copy, one pass). Both give the same tags, checked on the first call
before timing; that check is the warm-up (the LMs are slow enough at this size that a whole untimed round
would double the run).

**Command line**: `embedcache predict --model UPOS FILE --output OUT` and the same with `--model NER` (two
runs) against `embedcache predict --model UPOS --model NER FILE --output OUT` (one run), on the first
{{cli}} test sentences as raw text (one line each); wall time of each process and its peak RSS
(`ru_maxrss` read by a small launcher), one run each."""


def save_models(directory: Path, labels: list[str]) -> dict[str, Path]:
    """The UPOS and NER taggers on the same two random LMs, each saved with its own copy of the LMs."""
    lms = [
        CharLMEncoder(random_char_lm(forward, LM_HIDDEN, seed=i)) for i, forward in enumerate((True, False))
    ]
    models = {}
    for name, tags in (
        ("upos", TagDictionary(UPOS, "plain")),
        ("ner", TagDictionary.for_labels(labels, "BIOES")),
    ):
        torch.manual_seed(0)
        tagger = ec.SequenceTagger(lms, tags, name, hidden_size=TAGGER_HIDDEN)
        models[name] = directory / name
        tagger.save(models[name])
    return models


def predict_separately(taggers: list[ec.SequenceTagger], call: list[ec.TaggedSentence]) -> list:
    return [tagger.predict(call, batch_size=BATCH_SIZE) for tagger in taggers]


def check_same_tags(taggers: list[ec.SequenceTagger], pipeline: ec.Pipeline, call: list) -> None:
    """Refuse to time a pipeline whose tags differ from the taggers' own."""
    separate = predict_separately(taggers, call)
    together = pipeline.predict(call, batch_size=BATCH_SIZE)
    for k, own in enumerate(separate):
        if [row[k].tags for row in together] != [p.tags for p in own]:
            raise RuntimeError("pipeline suite: the pipeline's tags differ from the taggers' own; not timing")


# The peak RSS a child reports includes what it had when forked (Linux keeps the high-water mark across exec),
# so a child of this large process would report this process's size: a small interpreter starts the command
# and reads its children's peak instead.
_MEASURE = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)


def run_cli(arguments: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS bytes (the largest process of its tree) of one ``embedcache`` command."""
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _MEASURE, str(cli_executable()), *arguments], env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"embedcache {' '.join(arguments)} exited with {result.returncode}")
    return seconds, int(result.stdout.split()[-1]) * 1024


def run(config: BenchConfig) -> SuiteResult:
    corpus = WNUT17(config.data_dir / "wnut17")
    test = [s for s in corpus.test[: QUICK_SENTENCES if config.quick else None] if len(s)]
    calls = [test[i : i + CALL_SENTENCES] for i in range(0, len(test), CALL_SENTENCES)]
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as folder:
        models = save_models(Path(folder), entity_types(corpus.train))
        separate = [ec.SequenceTagger.load(path, device=config.device).eval() for path in models.values()]
        pipeline = ec.Pipeline(
            [ec.SequenceTagger.load(p, device=config.device).eval() for p in models.values()]
        )
        check_same_tags(separate, pipeline, calls[0])
        cases = [
            Case("separate", lambda call: predict_separately(separate, call)),
            Case("pipeline", lambda call: pipeline.predict(call, batch_size=BATCH_SIZE)),
        ]
        timings = time_cases(cases, calls, warmup=0, repeats=config.repeats, device=config.device)
        weights = pipeline.weight_nbytes()
        cli = _cli_runs(Path(folder), models, test[:CLI_SENTENCES], config.device)
    data = {
        "sentences": len(test),
        "timings": {k: v.to_json() for k, v in timings.items()},
        "cli": cli,
        "weights": {
            "shared_embedders": weights.shared_embedders,
            "taggers": weights.taggers,
            "total": weights.total,
            "separately": weights.separately,
        },
    }
    return SuiteResult(
        suite="pipeline",
        title="`pipeline`: two taggers on the same LMs, one pipeline vs two separate predicts (WNUT-17 test)",
        description=DESCRIPTION.format(n=len(test), cli=min(CLI_SENTENCES, len(test)))
        + quick_run_note(config.quick, "the first 128 sentences"),
        tables=[_speed_table(timings, len(test)), _cli_table(cli, CLI_SENTENCES), _bytes_table(weights)],
        data=data,
    )


def _cli_runs(folder: Path, models: dict[str, Path], test: list, device: torch.device) -> dict[str, list]:
    text = folder / "test.txt"
    text.write_text("".join(" ".join(s.tokens) + "\n" for s in test), encoding="utf-8")
    common = [str(text), "--device", device.type, "--quiet"]
    runs = {
        name: run_cli(["predict", "--model", str(path), *common, "--output", str(folder / f"{name}.out")])
        for name, path in models.items()
    }
    both = [f"--model={path}" for path in models.values()]
    runs["pipeline"] = run_cli(["predict", *both, *common, "--output", str(folder / "both.out")])
    log.info("command line: %s", runs)
    return runs


def _speed_table(timings: dict, n: int) -> Table:
    separate, pipeline = timings["separate"], timings["pipeline"]
    rows = [
        ["two taggers, separately", format_seconds(separate.median_s), f"{n / separate.median_s:,.1f}", "1"],
        [
            "pipeline",
            format_seconds(pipeline.median_s),
            f"{n / pipeline.median_s:,.1f}",
            f"{separate.median_s / pipeline.median_s:.2f}× ({separate.min_s / pipeline.min_s:.2f}× on mins)",
        ],
    ]
    notes = ["Sentences/s: sentences tagged by both taggers per second (median round)."]
    columns = ["case", "median", "sentences/s", "speed-up"]
    return Table("In-process predict, both tags for every sentence", columns, rows, notes)


def _cli_table(cli: dict[str, list], n: int) -> Table:
    (upos_s, upos_rss), (ner_s, ner_rss), (both_s, both_rss) = cli["upos"], cli["ner"], cli["pipeline"]
    mb = 2**20
    rows = [
        ["predict --model UPOS", format_seconds(upos_s), f"{upos_rss / mb:,.0f}"],
        ["predict --model NER", format_seconds(ner_s), f"{ner_rss / mb:,.0f}"],
        ["both runs", format_seconds(upos_s + ner_s), f"{max(upos_rss, ner_rss) / mb:,.0f} (each)"],
        ["predict --model UPOS --model NER", format_seconds(both_s), f"{both_rss / mb:,.0f}"],
    ]
    notes = [
        f"Speed-up of the pipeline run: {format_ratio((upos_s + ner_s) / both_s)} in wall time "
        f"({n / both_s:,.1f} against {n / (upos_s + ner_s):,.1f} sentences/s, start-up and loading "
        "included)."
    ]
    return Table("Command line, one run each", ["run", "wall", "peak RSS (MiB)"], rows, notes)


def _bytes_table(weights: WeightBytes) -> Table:
    rows = [["shared LMs (counted once)", f"{weights.shared_embedders:,}"]]
    rows += [[f"tagger {name}, own layers", f"{size:,}"] for name, size in weights.taggers.items()]
    rows += [
        ["pipeline total", f"{weights.total:,}"],
        ["two taggers loaded separately", f"{weights.separately:,}"],
    ]
    return Table("Weight bytes (float32, from `Pipeline.weight_nbytes()`)", ["what", "bytes"], rows)
