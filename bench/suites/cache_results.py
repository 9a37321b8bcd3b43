"""What the ``cache`` suite reports: epoch assembly times, bytes held, and their ratios to Flair's path."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.harness import Timing
from bench.lms import describe
from bench.report import SuiteResult, Table, format_ratio, format_ratios, format_seconds, quick_run_note
from bench.specs import BATCH_SIZE

PLACEMENTS = ("gpu", "cpu", "disk")
DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
FLAIR = "flair_cpu"

DESCRIPTION = f"""\
Time to assemble every mini-batch of one epoch of WNUT-17 train (`wnut17/train.conll`, 3,394 sentences;
{BATCH_SIZE} sentences a batch, shuffled once with seed 0, the same batches for every case) once the token
vectors are stored. The vectors are those of the forward LM of these: {describe("random")}.

- **Flair 0.15.1, storage `cpu`**: sentences embedded with `FlairEmbeddings("LMS/forward.pt")` and
  kept by `store_embeddings(batch, "cpu")`, as its `ModelTrainer` does; a batch is
  `SequenceTagger._make_padded_tensor_for_batch(sentences)`, which concatenates every token's stored
  embedding and the padding into a `(batch, tokens, D)` tensor.
- **embedcache**: `EmbeddingCache.batch(ids)` → `(padded float32 (batch, tokens, D), lengths)` from a store
  in each placement and dtype (`gpu` is the compute device, the CPU on a CPU-only run; `disk` is a
  memory-mapped file, warm in the page cache after the warm-up round). Each dtype's store is built once with
  the same LM and reopened in the other placements.

Before timing, the float32 `cpu` store's first batch is checked against Flair's padded tensor. Bytes are
exact: `EmbeddingCache.nbytes` (for `disk`, the file's size, not memory) and, for Flair,
`embedcache.accounting.retained_nbytes` over the embeddings kept on its tokens (distinct storages: a token's
vector is a view of its whole batch's LM states).

Block checksums (issue #16): a persisted store carries a CRC-32 per 1 MiB block, checked once per store
opened, the first time each block is read. Timed here: verifying every block of each dtype's store after
a fresh open (the file warm in the page cache), which a `cpu` or `gpu` store pays when it is opened and a
`disk` store spreads over the batches of its first epoch."""


def case_name(placement: str, dtype: torch.dtype) -> str:
    return f"ec_{placement}_{DTYPE_NAMES[dtype]}"


def verify_case_name(dtype: torch.dtype) -> str:
    return f"verify_{DTYPE_NAMES[dtype]}"


@dataclass(frozen=True)
class CachePlan:
    """The leading WNUT-17 train sentences whose epoch is assembled (``None``: all)."""

    sentences: int | None
    quick: bool


@dataclass(frozen=True)
class CacheRun:
    """Everything the suite measured."""

    sentences: int
    tokens: int
    batches: int
    timings: dict[str, Timing]
    cache_nbytes: dict[str, int]
    flair_nbytes: int

    def speedup(self, name: str, statistic: str = "median_s") -> float:
        """Flair's epoch time ÷ the case's (above 1: the store is faster)."""
        return getattr(self.timings[FLAIR], statistic) / getattr(self.timings[name], statistic)

    def disk_over_cpu(self, dtype_name: str, statistic: str = "median_s") -> float:
        disk, cpu = self.timings[f"ec_disk_{dtype_name}"], self.timings[f"ec_cpu_{dtype_name}"]
        return getattr(disk, statistic) / getattr(cpu, statistic)


def epoch_table(run: CacheRun) -> Table:
    flair = run.timings[FLAIR]
    rows = [
        ["Flair 0.15.1 `cpu` storage", format_seconds(flair.median_s), format_seconds(flair.min_s), "1.00×"]
    ]
    for name, timing in run.timings.items():
        if not name.startswith("ec_"):
            continue
        _, placement, dtype_name = name.split("_")
        rows.append(
            [
                f"embedcache `{placement}` {dtype_name}",
                format_seconds(timing.median_s),
                format_seconds(timing.min_s),
                format_ratios(run.speedup(name), run.speedup(name, "min_s")),
            ]
        )
    notes = [
        f"One epoch: {run.sentences:,} sentences, {run.tokens:,} tokens, {run.batches} batches.",
        "Speedup = Flair's epoch time ÷ the row's: medians (mins).",
    ]
    return Table("Assembling one epoch's batches", ["case", "median", "min", "Flair ÷ case"], rows, notes)


def disk_table(run: CacheRun) -> Table:
    rows = [
        [dtype_name, format_ratios(run.disk_over_cpu(dtype_name), run.disk_over_cpu(dtype_name, "min_s"))]
        for dtype_name in DTYPE_NAMES.values()
    ]
    return Table(
        "Disk placement (warm page cache) relative to cpu",
        ["dtype", "disk ÷ cpu: medians (mins)"],
        rows,
    )


def verification_table(run: CacheRun) -> Table:
    rows = []
    for dtype_name in DTYPE_NAMES.values():
        verify, assembly = run.timings[f"verify_{dtype_name}"], run.timings[f"ec_cpu_{dtype_name}"]
        nbytes = run.cache_nbytes[f"ec_disk_{dtype_name}"]
        rows.append(
            [
                dtype_name,
                f"{nbytes:,}",
                format_seconds(verify.median_s),
                format_seconds(verify.min_s),
                f"{nbytes / verify.median_s / 1e9:.2g} GB/s",
                f"{verify.median_s / assembly.median_s:.0%}",
            ]
        )
    notes = [
        "Paid once per store opened, not per epoch: the last column compares it with assembling one epoch's "
        "batches from the `cpu` store alone; a training epoch also runs the tagger (see the `train` suite)."
    ]
    columns = ["dtype", "store bytes", "median", "min", "throughput", "÷ one epoch's batches (`cpu`)"]
    return Table("Verifying the block checksums of a store (once per open)", columns, rows, notes)


def bytes_table(run: CacheRun) -> Table:
    rows = [["Flair 0.15.1 `cpu` storage (retained storages)", f"{run.flair_nbytes:,}", "1.00×"]]
    rows += [
        [
            f"embedcache `{name.split('_')[1]}` {name.split('_')[2]}",
            f"{nbytes:,}",
            format_ratio(run.flair_nbytes / nbytes),
        ]
        for name, nbytes in run.cache_nbytes.items()
    ]
    return Table("Bytes held for the epoch's vectors", ["store", "bytes", "Flair ÷ store"], rows)


def render(plan: CachePlan, run: CacheRun) -> SuiteResult:
    description = DESCRIPTION + quick_run_note(
        plan.quick, f"a smoke test on the first {plan.sentences} sentences"
    )
    data = {
        "sentences": run.sentences,
        "tokens": run.tokens,
        "batches": run.batches,
        "batch_size": BATCH_SIZE,
        "timings": {name: timing.to_json() for name, timing in run.timings.items()},
        "cache_nbytes": run.cache_nbytes,
        "flair_retained_nbytes": run.flair_nbytes,
        "flair_over_case": {name: run.speedup(name) for name in run.timings if name.startswith("ec_")},
        "disk_over_cpu": {d: run.disk_over_cpu(d) for d in DTYPE_NAMES.values()},
    }
    return SuiteResult(
        suite="cache",
        title="`cache`: one epoch's mini-batches from the embedding cache vs Flair 0.15.1 `cpu` storage",
        description=description,
        tables=[epoch_table(run), disk_table(run), verification_table(run), bytes_table(run)],
        data=data,
    )
