"""What the ``convert`` suite reports: sentences/s of a converted Flair tagger ÷ the original's."""

from __future__ import annotations

from dataclasses import dataclass

from bench.harness import Timing
from bench.report import SuiteResult, Table, format_ratio, format_seconds, quick_run_note
from bench.specs import BATCH_SIZE, CALL_SENTENCES

HIDDEN_SIZE = 256


@dataclass(frozen=True)
class ConvertPlan:
    """The leading WNUT-17 test sentences to tag (``None``: all)."""

    sentences: int | None
    quick: bool


@dataclass(frozen=True)
class ConvertRun:
    """Everything the suite measured."""

    sentences: int
    tokens: int
    spans: int  # spans compared before timing, all identical
    timings: dict[str, Timing]


DESCRIPTION = f"""\
A Flair 0.15.1 `SequenceTagger` (`StackedEmbeddings([FlairEmbeddings(forward), FlairEmbeddings(backward)])`,
random character LMs of hidden {HIDDEN_SIZE} over printable ASCII, re-projection, a BiLSTM of hidden
{HIDDEN_SIZE}, a CRF, BIOES tags of WNUT-17's six entity types; random seeded weights: the time to tag does
not depend on them) is saved with Flair's `save` and converted from that file with
`convert_flair_tagger_file` (what `embedcache convert` runs). Both models, each loaded from its file, tag
WNUT-17 test with their own `predict` ({BATCH_SIZE} sentences a batch, storage `none`) on calls of
{CALL_SENTENCES} sentences, alternating call by call. Before timing, both label every test sentence and the
suite stops unless the labels (span boundaries and types) are identical and their scores agree within 1e-5."""


def render(plan: ConvertPlan, run: ConvertRun) -> SuiteResult:
    sentences, tokens, spans, timings = run.sentences, run.tokens, run.spans, run.timings
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
        description=DESCRIPTION + quick_run_note(plan.quick, f"the first {plan.sentences} test sentences"),
        tables=[headline, Table("Predict", ["model", "median", "min", "sentences/s (median)"], rows, notes)],
        data={
            "sentences": sentences,
            "tokens": tokens,
            "spans_compared": spans,
            "timings": {name: t.to_json() for name, t in timings.items()},
            "converted_over_flair_sentences_per_second": ratio,
        },
    )
