"""What the ``pipeline`` suite reports: two taggers as one pipeline vs separately, in process and on the
command line, and the weight bytes."""

from __future__ import annotations

from dataclasses import dataclass

from bench.harness import Timing
from bench.report import SuiteResult, Table, format_ratio, format_seconds, quick_run_note
from bench.specs import BATCH_SIZE, CALL_SENTENCES
from embedcache.inference.tagger_group import WeightBytes

LM_HIDDEN = 2048  # as the news LMs under Flair's pos and ner models
TAGGER_HIDDEN = 256


@dataclass(frozen=True)
class PipelinePlan:
    """The leading WNUT-17 test sentences tagged in process (``None``: all) and on the command line."""

    sentences: int | None
    cli_sentences: int
    quick: bool


@dataclass(frozen=True)
class PipelineRun:
    """Everything the suite measured; ``cli``: wall seconds and peak RSS bytes by run."""

    sentences: int
    timings: dict[str, Timing]
    cli: dict[str, tuple[float, int]]
    weights: WeightBytes


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


def render(plan: PipelinePlan, run: PipelineRun) -> SuiteResult:
    timings, cli, weights, n = run.timings, run.cli, run.weights, run.sentences
    data = {
        "sentences": n,
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
        description=DESCRIPTION.format(n=n, cli=min(plan.cli_sentences, n))
        + quick_run_note(plan.quick, f"the first {plan.sentences} sentences"),
        tables=[_speed_table(timings, n), _cli_table(cli, plan.cli_sentences), _bytes_table(weights)],
        data=data,
    )


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
