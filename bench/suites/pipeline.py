"""Suite ``pipeline``: a UPOS and a WNUT-17 NER tagger over the same two char LMs, as one pipeline (one LM
pass per batch, one copy of the LMs) against the two taggers run separately.

Nothing needs training: both LMs and both taggers have random, seeded weights (speed and bytes depend on the
sizes, not on the values). Each tagger is saved as its own model directory with its own copy of the LM files,
as two trained models would be; the pipeline finds the copies equal by fingerprint and keeps one.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import torch

import embedcache as ec
from bench.commands import run_cli
from bench.harness import BenchConfig, Case, Suite, time_cases
from bench.inputs import entity_types
from bench.specs import BATCH_SIZE, CALL_SENTENCES, WNUT17
from bench.suites.pipeline_results import LM_HIDDEN, TAGGER_HIDDEN, PipelinePlan, PipelineRun, render
from embedcache.recipes import random_char_lm

log = logging.getLogger(__name__)

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


def save_models(directory: Path, labels: list[str]) -> dict[str, Path]:
    """The UPOS and NER taggers on the same two random LMs, each saved with its own copy of the LMs."""
    lms = [
        ec.CharLMEncoder(random_char_lm(forward, LM_HIDDEN, seed=i))
        for i, forward in enumerate((True, False))
    ]
    models = {}
    for name, tags in (
        ("upos", ec.TagDictionary(UPOS, "plain")),
        ("ner", ec.TagDictionary.for_labels(labels, "BIOES")),
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


def plan(config: BenchConfig) -> PipelinePlan:
    return PipelinePlan(QUICK_SENTENCES if config.quick else None, CLI_SENTENCES, config.quick)


def measure(plan: PipelinePlan, config: BenchConfig) -> PipelineRun:
    corpus = ec.datasets.WNUT17(config.data_dir / WNUT17)
    test = [s for s in corpus.test[: plan.sentences] if len(s)]
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
        cli = _cli_runs(Path(folder), models, test[: plan.cli_sentences], config.device)
    return PipelineRun(len(test), timings, cli, weights)


def _cli_runs(
    folder: Path, models: dict[str, Path], test: list, device: torch.device
) -> dict[str, tuple[float, int]]:
    text = folder / "test.txt"
    text.write_text("".join(" ".join(s.tokens) + "\n" for s in test), encoding="utf-8")
    common = [str(text), "--device", device.type, "--quiet", "--backend=torch"]  # the onnx suite times onnx
    runs = {
        name: run_cli(["predict", "--model", str(path), *common, "--output", str(folder / f"{name}.out")])
        for name, path in models.items()
    }
    both = [f"--model={path}" for path in models.values()]
    runs["pipeline"] = run_cli(["predict", *both, *common, "--output", str(folder / "both.out")])
    log.info("command line: %s", runs)
    return runs


SUITE = Suite("pipeline", ("random",), plan, measure, render)
