"""What the ``predict`` suite reports: sentences per second in process and through the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.harness import Timing
from bench.lms import describe
from bench.report import SuiteResult, Table, format_ratio, format_ratios, format_seconds, quick_run_note
from bench.specs import BATCH_SIZE, CALL_SENTENCES

DESCRIPTION = f"""\
Tagging WNUT-17 test (`wnut17/test.conll`) with a BiLSTM-CRF NER tagger of one shape in both libraries:
{describe("random")} (Flair: `StackedEmbeddings([FlairEmbeddings("LMS/forward.pt"),
FlairEmbeddings("LMS/backward.pt")])`, embedcache: `CharLMEmbeddings("LMS/forward")` and `…/backward`),
re-projection, a BiLSTM of hidden 256, a CRF, BIOES tags of the six entity types. Tagger weights are random
(seed 0) too: the time to tag does not depend on them.

**In process**: `SequenceTagger.predict` of each library, {BATCH_SIZE} sentences a batch, storage `none`
(both defaults), on calls of {CALL_SENTENCES} sentences; the libraries alternate call by call. embedcache
takes its `TaggedSentence`s; Flair takes `Sentence`s made before each call, outside the clock (its predict
labels them). Each library sorts a call's sentences by length into batches.

**Command line**: `embedcache predict --model DIR FILE --output OUT --device DEVICE --quiet` in a subprocess
(the environment's `embedcache` script, `OMP_NUM_THREADS` set to the suite's thread count) on the embedcache
model saved with `SequenceTagger.save`, for the sentences as a CoNLL file and as raw text (one sentence per
line, tokens joined by spaces; the command splits and tokenises it with segtok as Flair does), and for a
one-sentence file: the start-up (interpreter, imports, loading the model). Its time is the whole process."""


@dataclass(frozen=True)
class PredictPlan:
    """The leading WNUT-17 test sentences to tag (``None``: all)."""

    sentences: int | None
    quick: bool


@dataclass(frozen=True)
class CliInput:
    """An input file of the command-line runs."""

    name: str
    path: Path
    sentences: int


@dataclass(frozen=True)
class PredictRun:
    """Everything the suite measured."""

    sentences: int
    tokens: int
    timings: dict[str, Timing]
    cli_inputs: list[CliInput]
    cli_timings: dict[str, Timing]

    def speedup(self, statistic: str = "median_s") -> float:
        """embedcache's sentences/s ÷ Flair's (Flair's time ÷ embedcache's)."""
        flair, ours = self.timings["flair_predict"], self.timings["ec_predict"]
        return getattr(flair, statistic) / getattr(ours, statistic)

    def cli_rate(self, cli_input: CliInput, statistic: str = "median_s") -> float:
        return cli_input.sentences / getattr(self.cli_timings[f"cli_{cli_input.name}"], statistic)

    def cli_rate_after_startup(self, cli_input: CliInput) -> float | None:
        """Sentences/s with the one-sentence run's median taken off; ``None`` where nothing is left of it.

        Where start-up varies by more than the work takes (a cold import on a machine with a fast GPU), the
        difference of two medians can be zero or negative: no rate can be read from it.
        """
        seconds = (
            self.cli_timings[f"cli_{cli_input.name}"].median_s - self.cli_timings["cli_startup"].median_s
        )
        return cli_input.sentences / seconds if seconds > 0 else None


def headline_table(run: PredictRun) -> Table:
    conll = next(i for i in run.cli_inputs if i.name == "conll")
    in_process = run.sentences / run.timings["ec_predict"].median_s
    rows = [
        [
            "predict sentences/s: embedcache ÷ Flair 0.15.1",
            format_ratios(run.speedup(), run.speedup("min_s")),
        ],
        ["`embedcache predict` on CoNLL, start-up included: sentences/s", f"{run.cli_rate(conll):,.1f}"],
        ["… ÷ in-process embedcache predict", format_ratio(run.cli_rate(conll) / in_process)],
        [
            "`embedcache predict` start-up (one sentence)",
            format_seconds(run.cli_timings["cli_startup"].median_s),
        ],
    ]
    return Table("Headline", ["measure", "medians (mins)"], rows)


def in_process_table(run: PredictRun) -> Table:
    labels = {
        "flair_predict": "Flair 0.15.1 `SequenceTagger.predict(sentences, mini_batch_size=32)`",
        "ec_predict": "embedcache `SequenceTagger.predict(sentences, batch_size=32)`",
    }
    rows = [
        [label, format_seconds(t.median_s), format_seconds(t.min_s), f"{run.sentences / t.median_s:,.1f}"]
        for name, label in labels.items()
        for t in [run.timings[name]]
    ]
    notes = [f"{run.sentences:,} sentences, {run.tokens:,} tokens."]
    return Table("In process", ["case", "median", "min", "sentences/s (median)"], rows, notes)


def cli_table(run: PredictRun) -> Table:
    rows = []
    for cli_input in run.cli_inputs:
        timing = run.cli_timings[f"cli_{cli_input.name}"]
        rates = ["–", "–"]  # the start-up run measures the start-up, not a rate
        if cli_input.name != "startup":
            after_startup = run.cli_rate_after_startup(cli_input)
            rates = [
                f"{run.cli_rate(cli_input):,.1f}",
                "–" if after_startup is None else f"{after_startup:,.1f}",
            ]
        rows.append([cli_input.name, f"{cli_input.sentences:,}", format_seconds(timing.median_s),
                     format_seconds(timing.min_s), *rates])  # fmt: skip
    notes = [
        "Start-up excluded: the one-sentence run's median subtracted from the input's median; – where that "
        "leaves nothing (start-up varied by more than the work took)."
    ]
    columns = ["input", "sentences", "median", "min", "sentences/s", "sentences/s, start-up excluded"]
    return Table("`embedcache predict` end to end (a subprocess per run)", columns, rows, notes)


def render(plan: PredictPlan, run: PredictRun) -> SuiteResult:
    slice_text = f"a smoke test on the first {plan.sentences} test sentences"
    description = DESCRIPTION + quick_run_note(plan.quick, slice_text)
    data = {
        "sentences": run.sentences,
        "tokens": run.tokens,
        "timings": {name: timing.to_json() for name, timing in run.timings.items()},
        "cli_inputs": [{"name": i.name, "sentences": i.sentences} for i in run.cli_inputs],
        "cli_timings": {name: timing.to_json() for name, timing in run.cli_timings.items()},
        "ec_over_flair_sentences_per_second": run.speedup(),
        "cli_sentences_per_second": {i.name: run.cli_rate(i) for i in run.cli_inputs},
    }
    return SuiteResult(
        suite="predict",
        title="`predict`: sentences/s, embedcache vs Flair 0.15.1, and the command line (WNUT-17 test)",
        description=description,
        tables=[headline_table(run), in_process_table(run), cli_table(run)],
        data=data,
    )
