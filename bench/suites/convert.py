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
from flair.data import Dictionary, Sentence
from flair.embeddings import FlairEmbeddings, StackedEmbeddings
from flair.models import SequenceTagger as FlairSequenceTagger

import embedcache as ec
from bench.harness import BenchConfig, Case, Timing, time_cases
from bench.inputs import BATCH_SIZE
from bench.report import SuiteResult, Table, format_ratio, format_seconds, quick_run_note
from embedcache.data.datasets import WNUT17
from embedcache.models.flair_conversion import convert_flair_tagger_file
from embedcache.recipes import random_char_lm

HIDDEN_SIZE = 256
CALL_SENTENCES = 128
QUICK_SENTENCES = 64

DESCRIPTION = f"""\
A Flair 0.15.1 `SequenceTagger` (`StackedEmbeddings([FlairEmbeddings(forward), FlairEmbeddings(backward)])`,
random character LMs of hidden {HIDDEN_SIZE} over printable ASCII, re-projection, a BiLSTM of hidden
{HIDDEN_SIZE}, a CRF, BIOES tags of WNUT-17's six entity types; random seeded weights: the time to tag does
not depend on them) is saved with Flair's `save` and converted from that file with
`convert_flair_tagger_file` (what `embedcache convert` runs). Both models, each loaded from its file, tag
WNUT-17 test with their own `predict` ({BATCH_SIZE} sentences a batch, storage `none`) on calls of
{CALL_SENTENCES} sentences, alternating call by call. Before timing, both label every test sentence and the
suite stops unless the labels (span boundaries and types) are identical and their scores agree within 1e-5."""


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
    dictionary = Dictionary(add_unk=False)
    for label in labels:
        dictionary.add_item(label)
    dictionary.span_labels = True
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


def run(config: BenchConfig) -> SuiteResult:
    corpus = WNUT17(config.data_dir / "wnut17")
    test = [s.tokens for s in corpus.test[: QUICK_SENTENCES if config.quick else None] if len(s)]
    labels = sorted({tag[2:] for s in corpus.train for tag in s.tags or [] if tag != "O"})
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
    return suite_result(len(test), sum(map(len, test)), spans, timings, config.quick)


def suite_result(
    sentences: int, tokens: int, spans: int, timings: dict[str, Timing], quick: bool
) -> SuiteResult:
    ratio = timings["flair"].median_s / timings["converted"].median_s
    ratio_min = timings["flair"].min_s / timings["converted"].min_s
    rows = [
        [name, format_seconds(t.median_s), format_seconds(t.min_s), f"{sentences / t.median_s:,.1f}"]
        for name, t in (("Flair 0.15.1 model (its .pt)", timings["flair"]),
                        ("converted embedcache model", timings["converted"]))
    ]  # fmt: skip
    headline = Table(
        "Headline",
        ["measure", "value"],
        [
            [
                "sentences/s: converted ÷ Flair original, medians (mins)",
                f"{format_ratio(ratio)} ({format_ratio(ratio_min)})",
            ],
            ["labels identical before timing", f"{sentences:,} sentences, {spans:,} spans"],
        ],
    )
    notes = [f"{sentences:,} sentences, {tokens:,} tokens."]
    return SuiteResult(
        suite="convert",
        title="`convert`: a converted Flair tagger vs the original, sentences/s (WNUT-17 test)",
        description=DESCRIPTION + quick_run_note(quick, f"the first {QUICK_SENTENCES} test sentences"),
        tables=[headline, Table("Predict", ["model", "median", "min", "sentences/s (median)"], rows, notes)],
        data={
            "sentences": sentences,
            "tokens": tokens,
            "spans_compared": spans,
            "timings": {name: t.to_json() for name, t in timings.items()},
            "converted_over_flair_sentences_per_second": ratio,
        },
    )
