"""What the ``embed`` suite reports: case labels, headline ratios, tables and the JSON record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bench.harness import Timing
from bench.inputs import CHAR_EMBEDDING_SIZE, LM_SEED
from bench.report import SuiteResult, Table, format_ratio, format_seconds, quick_run_note
from bench.specs import BATCH_SIZE

EXTRACTION_LABELS = {
    "flair_views": "Flair 0.15.1 loop: `states[offset, i, :]` view + `set_embedding` (Flair's `none`)",
    "flair_clone": "Flair loop + `.clone()` per token (pre-#1074; exact memory in `gpu`)",
    "ec_rows": "embedcache token rows: `locate_tokens` with the LM replayed",
    "ec_views": "embedcache `row_views` + `set_embedding` (`none`)",
    "ec_gather_unbind": "embedcache `gather_rows(...).unbind(0)` + `set_embedding` (`gpu`)",
    "ec_gather": "embedcache `gather_rows` only (tensor level, no per-token objects)",
}
EMBED_LABELS = {
    "flair_embed": "`FlairEmbeddings(lm).embed(batch)` (keeps views)",
    "ec_embed_none": '`CharLMEmbeddings(lm).embed(batch)`, `storage_mode("none")`',
    "ec_embed_gpu": '`CharLMEmbeddings(lm).embed(batch)`, `storage_mode("gpu")`',
    "ec_embed_batch": "`CharLMEncoder.embed_batch(tokens)` (tensor level, `gpu`)",
    "lm_floor": "LM floor: `CharLMEncoder.hidden_states(lm_strings)` alone",
}


@dataclass(frozen=True)
class Ratio:
    """Summed times of ``numerator`` cases over those of ``denominator``; above 1, the latter is faster."""

    key: str
    label: str
    part: Literal["extraction", "embed"]
    numerator: tuple[str, ...]
    denominator: tuple[str, ...]


_ROWS_INCLUDED = "… embedcache's token rows included"
RATIOS = (
    Ratio(
        "extraction_none",
        "extraction `none`: Flair views ÷ `row_views`",
        "extraction",
        ("flair_views",),
        ("ec_views",),
    ),
    Ratio("extraction_none_rows", _ROWS_INCLUDED, "extraction", ("flair_views",), ("ec_rows", "ec_views")),
    Ratio(
        "extraction_gpu",
        "extraction `gpu`: Flair clone per token ÷ gather + unbind",
        "extraction",
        ("flair_clone",),
        ("ec_gather_unbind",),
    ),
    Ratio(
        "extraction_gpu_rows", _ROWS_INCLUDED, "extraction", ("flair_clone",), ("ec_rows", "ec_gather_unbind")
    ),
    Ratio(
        "extraction_tensor_rows",
        "extraction, tensor level: Flair clone per token ÷ `gather_rows`, rows included",
        "extraction",
        ("flair_clone",),
        ("ec_rows", "ec_gather"),
    ),
    Ratio("embed_none", "embed `none`: Flair ÷ embedcache", "embed", ("flair_embed",), ("ec_embed_none",)),
    Ratio("embed_gpu", "embed `gpu`: Flair ÷ embedcache", "embed", ("flair_embed",), ("ec_embed_gpu",)),
    Ratio(
        "embed_none_floor", "embed `none`: embedcache ÷ LM floor", "embed", ("ec_embed_none",), ("lm_floor",)
    ),
    Ratio("embed_gpu_floor", "embed `gpu`: embedcache ÷ LM floor", "embed", ("ec_embed_gpu",), ("lm_floor",)),
    Ratio(
        "embed_batch_floor",
        "embed, tensor level: `embed_batch` ÷ LM floor",
        "embed",
        ("ec_embed_batch",),
        ("lm_floor",),
    ),
    Ratio("flair_floor", "embed: Flair ÷ LM floor", "embed", ("flair_embed",), ("lm_floor",)),
)

DESCRIPTION = f"""\
Contextual string embeddings on WNUT-17 train (`wnut17/train.conll`, 3,394 sentences), mini-batches of
{BATCH_SIZE} sentences in file order, one forward Flair `LanguageModel` (1 layer, character embeddings of
{CHAR_EMBEDDING_SIZE}, `chars_per_chunk=512`, default options) random-initialised with seed {LM_SEED} over
every character of the corpus; speed does not depend on the weights' values. What runs the LM many times is
timed on leading slices of the corpus (listed under the ratios): the whole embed call runs it five times per
round, and at hidden 2048 a forward pass costs seconds per mini-batch on a small CPU.

**Extraction stage**: the LM states of each batch are computed once (`CharLMEncoder.locate_tokens`) and
every case reads the same states. Flair's loop is `FlairEmbeddings._add_embeddings_internal` of flair 0.15.1
after its LM call, line for line, as is (views; what Flair keeps in storage `none`) and with the `.clone()`
per token that Flair made before PR #1074 (the way to exact memory in `gpu` storage). embedcache computes all
token rows of a batch before the LM runs; "token rows" times that bookkeeping alone (`locate_tokens` with the
LM pass replaced by the precomputed states), and the "rows included" ratios add it, since Flair's loop
computes its offsets inline.

**Whole embed call**: `embed` on Flair `Sentence`s whose embeddings are cleared before each call (outside the
clock), so every call runs the LM; the LM floor is the forward pass alone on the same LM input strings."""


@dataclass(frozen=True)
class Workload:
    """One LM hidden size and the leading slices of the corpus it is timed on (``None``: all of it).

    A forward pass at hidden 2048 costs seconds per mini-batch on a 2-core CPU, and the whole-embed part runs
    the LM five times per round, so the slices there are shorter to keep the suite near 15 minutes.
    """

    hidden_size: int
    extraction_sentences: int | None
    embed_sentences: int | None


@dataclass(frozen=True)
class EmbedPlan:
    """The LM sizes and slices to time."""

    workloads: tuple[Workload, ...]
    quick: bool


@dataclass(frozen=True)
class Slice:
    """The leading slice of the corpus a part was timed on."""

    sentences: int
    tokens: int
    batches: int


@dataclass(frozen=True)
class WorkloadResult:
    """The timings of both parts for one LM hidden size."""

    hidden_size: int
    extraction_slice: Slice
    extraction: dict[str, Timing]
    embed_slice: Slice
    embed: dict[str, Timing]

    def ratio(self, spec: Ratio, statistic: Literal["median", "min"] = "median") -> float:
        timings = self.extraction if spec.part == "extraction" else self.embed

        def seconds(names: tuple[str, ...]) -> float:
            return sum(getattr(timings[name], f"{statistic}_s") for name in names)

        return seconds(spec.numerator) / seconds(spec.denominator)


def _slice_heading(part: str, hidden_size: int, timed: Slice, corpus_sentences: int) -> str:
    which = "all" if timed.sentences == corpus_sentences else "first"
    return (
        f"{part}, hidden {hidden_size}: {which} {timed.sentences:,} sentences "
        f"({timed.tokens:,} tokens, {timed.batches} batches)"
    )


def timing_table(title: str, labels: dict[str, str], timings: dict[str, Timing], timed: Slice) -> Table:
    rows = [
        [
            labels[name],
            format_seconds(timing.median_s),
            format_seconds(timing.min_s),
            format_seconds(timing.median_s / timed.tokens),
        ]
        for name, timing in timings.items()
    ]
    return Table(title, ["case", "median", "min", "median per token"], rows)


def ratio_table(results: Sequence[WorkloadResult], corpus_sentences: int) -> Table:
    columns = ["ratio (above 1: the right-hand side is faster)"]
    columns += [f"hidden {result.hidden_size}: medians (mins)" for result in results]
    rows = [
        [spec.label]
        + [
            f"{format_ratio(result.ratio(spec))} ({format_ratio(result.ratio(spec, 'min'))})"
            for result in results
        ]
        for spec in RATIOS
    ]
    notes = [
        _slice_heading(part, result.hidden_size, timed, corpus_sentences)
        for result in results
        for part, timed in (("Extraction", result.extraction_slice), ("Embed", result.embed_slice))
    ]
    notes.append("Where a ratio sums cases, it is the ratio of their summed medians (or mins).")
    return Table("Headline ratios", columns, rows, notes)


def _part_json(timed: Slice, labels: dict[str, str], timings: dict[str, Timing]) -> dict[str, object]:
    cases = {name: {"label": labels[name], **timing.to_json()} for name, timing in timings.items()}
    return {"sentences": timed.sentences, "tokens": timed.tokens, "batches": timed.batches, "cases": cases}


def result_json(results: Sequence[WorkloadResult]) -> dict[str, object]:
    return {
        "batch_size": BATCH_SIZE,
        "lm_seed": LM_SEED,
        "workloads": [
            {
                "hidden_size": result.hidden_size,
                "extraction": _part_json(result.extraction_slice, EXTRACTION_LABELS, result.extraction),
                "embed": _part_json(result.embed_slice, EMBED_LABELS, result.embed),
                "ratios": {
                    spec.key: {"median": result.ratio(spec), "min": result.ratio(spec, "min")}
                    for spec in RATIOS
                },
            }
            for result in results
        ],
    }


@dataclass(frozen=True)
class EmbedRun:
    """The results of every LM size, and the corpus's sentence count (for the slice headings)."""

    results: list[WorkloadResult]
    corpus_sentences: int


def render(plan: EmbedPlan, run: EmbedRun) -> SuiteResult:
    """Headline ratios first, then the timings of each part for each hidden size."""
    results, corpus_sentences = run.results, run.corpus_sentences
    tables = [ratio_table(results, corpus_sentences)]
    for result in results:
        hidden = result.hidden_size
        tables += [
            timing_table(
                _slice_heading("Extraction stage", hidden, result.extraction_slice, corpus_sentences),
                EXTRACTION_LABELS,
                result.extraction,
                result.extraction_slice,
            ),
            timing_table(
                _slice_heading("Whole embed call", hidden, result.embed_slice, corpus_sentences),
                EMBED_LABELS,
                result.embed,
                result.embed_slice,
            ),
        ]
    description = DESCRIPTION + quick_run_note(plan.quick, "a smoke test on a small slice")
    return SuiteResult(
        suite="embed",
        title="`embed`: extraction stage and whole embed call, embedcache vs Flair 0.15.1 (WNUT-17 train)",
        description=description,
        tables=tables,
        data=result_json(results),
    )
