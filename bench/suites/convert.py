"""Suite ``convert``: a Flair 0.15.1 tagger saved by Flair, converted with ``embedcache convert``'s code, both
tagging WNUT-17 test: sentences/s of the converted model ÷ the original, and their tags compared first.

Nothing needs training beforehand: the LMs are random stand-ins of the recipe's size (hidden 256, forward
and backward) and the tagger's weights are random and seeded, because the time to tag does not depend on the
weights. The suite refuses to time models whose labels differ on any test sentence.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from flair.data import Sentence
from flair.embeddings import FlairEmbeddings, StackedEmbeddings
from flair.models import SequenceTagger as FlairSequenceTagger

import embedcache as ec
from bench.harness import BenchConfig, Case, Suite, time_cases
from bench.inputs import entity_types
from bench.specs import BATCH_SIZE, CALL_SENTENCES, WNUT17
from bench.suites.convert_results import HIDDEN_SIZE, ConvertPlan, ConvertRun, render
from bench.taggers import flair_span_dictionary
from embedcache.models.flair_conversion import convert_flair_tagger_file
from embedcache.recipes import random_char_lm

QUICK_SENTENCES = 64


@dataclass(frozen=True)
class Call:
    sentences: list[list[str]]
    flair_sentences: list[Sentence]

    def rebuild_flair_sentences(self) -> None:
        self.flair_sentences[:] = [Sentence(tokens) for tokens in self.sentences]


def saved_flair_tagger(labels: list[str], directory: Path) -> Path:
    embeddings = StackedEmbeddings(
        [
            FlairEmbeddings(random_char_lm(True, HIDDEN_SIZE, 1)),
            FlairEmbeddings(random_char_lm(False, HIDDEN_SIZE, 2)),
        ]
    )
    dictionary = flair_span_dictionary(labels)
    torch.manual_seed(0)
    tagger = FlairSequenceTagger(embeddings, dictionary, "ner", tag_format="BIOES", hidden_size=HIDDEN_SIZE)
    tagger.save(directory / "flair-tagger.pt")
    return directory / "flair-tagger.pt"


def labels_of(sentences: list[Sentence]) -> list[list[tuple[int, int, str, float]]]:
    return [
        [(span.tokens[0].idx, span.tokens[-1].idx, span.tag, span.score) for span in s.get_spans("ner")]
        for s in sentences
    ]


def compare_labels(ours: ec.SequenceTagger, theirs: FlairSequenceTagger, sentences: list[list[str]]) -> int:
    """Label every sentence with both models; the number of spans compared, or an error where they differ."""
    by_flair, by_us = [Sentence(s) for s in sentences], [Sentence(s) for s in sentences]
    theirs.predict(by_flair, mini_batch_size=BATCH_SIZE)
    ours.predict(by_us, batch_size=BATCH_SIZE)
    expected, got = labels_of(by_flair), labels_of(by_us)
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        same_spans = [x[:3] for x in a] == [x[:3] for x in b]
        if not same_spans or any(abs(x[3] - y[3]) > 1e-5 for x, y in zip(a, b, strict=True)):
            raise RuntimeError(f"convert suite: labels differ on test sentence {index}: {a} vs {b}")
    return sum(len(a) for a in expected)


def plan(config: BenchConfig) -> ConvertPlan:
    return ConvertPlan(QUICK_SENTENCES if config.quick else None, config.quick)


def measure(plan: ConvertPlan, config: BenchConfig) -> ConvertRun:
    corpus = ec.datasets.WNUT17(config.data_dir / WNUT17)
    test = [s.tokens for s in corpus.test[: plan.sentences] if len(s)]
    labels = entity_types(corpus.train)
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as root:
        flair_file = saved_flair_tagger(labels, Path(root))
        convert_flair_tagger_file(flair_file, Path(root) / "converted")
        theirs = FlairSequenceTagger.load(flair_file).eval()
        ours = ec.SequenceTagger.load(Path(root) / "converted", device=config.device).eval()
    spans = compare_labels(ours, theirs, test)
    calls = [Call(test[i : i + CALL_SENTENCES], []) for i in range(0, len(test), CALL_SENTENCES)]
    cases = [
        Case("converted", lambda call: ours.predict(call.sentences, batch_size=BATCH_SIZE)),
        Case(
            "flair",
            lambda call: theirs.predict(call.flair_sentences, mini_batch_size=BATCH_SIZE),
            lambda call: call.rebuild_flair_sentences(),
        ),
    ]
    timings = time_cases(cases, calls, warmup=config.warmup, repeats=config.repeats, device=config.device)
    return ConvertRun(len(test), sum(map(len, test)), spans, timings)


SUITE = Suite("convert", ("random",), plan, measure, render)
