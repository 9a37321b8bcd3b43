"""What the ``onnx`` suite reports: predict sentences/s per LM size and backend, memory, int8 accuracy."""

from __future__ import annotations

from dataclasses import dataclass

from bench.harness import Timing
from bench.report import SuiteResult, Table, format_ratio, quick_run_note
from bench.specs import BATCH_SIZE, CALL_SENTENCES

DESCRIPTION = f"""\
`SequenceTagger.predict` on WNUT-17 test (`wnut17/test.conll`, in file order) on the CPU, {BATCH_SIZE}
sentences a batch, storage `none`, calls of {CALL_SENTENCES} sentences, the cases alternating call by call:
Flair 0.15.1, embedcache with its char LMs in torch, and embedcache with them in ONNX Runtime, fp32 and int8
(`SequenceTagger.load(model, backend="onnx", int8=...)`; the LMs exported with `torch.onnx.export` and, for
int8, quantised with `onnxruntime.quantization.quantize_dynamic`). Both libraries' taggers have one shape: a
forward and a backward char LM of the given hidden size (one layer, character vectors of 32), re-projection,
a BiLSTM of hidden 256, a CRF, the BIOES tags of WNUT-17's six entity types. **All weights are random**
(seeded; Flair and embedcache share the LM weights): the time to tag does not depend on them. Each LM size
tags a prefix of the test set (the sentence counts are in the table; fewer for larger LMs): on this shared
2-core machine Flair's fp32 LMs of hidden 2048 alone would take minutes per round on the whole set.

Threads: torch's intra-op threads (`torch.set_num_threads`), ONNX Runtime's `intra_op_num_threads`; the
record was run with `OMP_WAIT_POLICY=PASSIVE` in the environment (on a shared 2-core machine, spinning
OpenMP threads made every 2-thread case 10-40× slower, Flair's and torch's alike).
"in turn": the two LMs one after the other, each session on all threads; "at once": the two LMs in two
Python threads (ONNX Runtime releases the GIL), each session on half the threads.

Tags: torch vs ONNX fp32 on the same random tagger: all of WNUT-17 test at hidden 256, the timed
sentences at 1024 and 2048. Memory: the LMs' bytes (torch fp32
parameters, ONNX files) and the peak RSS (GNU `time`) of `embedcache predict --threads 1` tagging the
hidden-2048 sentences, start-up included, ONNX exports already in the cache. Accuracy: the bundled
`en-upos` model (trained LMs of hidden 256 and tagger) on LinES test, `embedcache evaluate en-upos
ud_english_lines/test.conllu --backend …`."""

CASE_LABELS = {
    "flair": "Flair 0.15.1",
    "torch": "embedcache, torch",
    "onnx_fp32": "embedcache, ONNX fp32 (in turn)",
    "onnx_fp32_at_once": "embedcache, ONNX fp32, LMs at once",
    "onnx_int8": "embedcache, ONNX int8 (in turn)",
    "onnx_int8_at_once": "embedcache, ONNX int8, LMs at once",
}


@dataclass(frozen=True)
class OnnxPlan:
    """WNUT-17 test sentences timed per LM hidden size, the thread counts, and whether to score accuracy."""

    sentences: dict[int, int]
    threads: tuple[int, ...]
    accuracy: bool
    quick: bool


@dataclass(frozen=True)
class Memory:
    case: str
    lm_nbytes: int
    peak_rss_bytes: int


@dataclass(frozen=True)
class Accuracy:
    case: str
    accuracy: float
    sentences: int


@dataclass(frozen=True)
class SizeRun:
    """One LM size: timings by thread count and case, tag identity, memory (hidden 2048 only)."""

    hidden: int
    sentences: int
    tokens: int
    timings: dict[int, dict[str, Timing]]
    same_tags: tuple[int, int]
    memory: list[Memory]

    def rate(self, threads: int, case: str) -> float:
        return self.sentences / self.timings[threads][case].median_s

    def over_flair(self, threads: int, case: str) -> float:
        return self.timings[threads]["flair"].median_s / self.timings[threads][case].median_s


def headline_table(runs: list[SizeRun]) -> Table:
    columns = ["LM hidden", "threads", "sentences"] + [
        f"{CASE_LABELS[c]} ÷ Flair" for c in ("torch", "onnx_fp32", "onnx_int8", "onnx_int8_at_once")
    ]
    rows = []
    for run in runs:
        for threads, timings in run.timings.items():
            ratios = [format_ratio(run.over_flair(threads, c)) if c in timings else "–"
                      for c in ("torch", "onnx_fp32", "onnx_int8", "onnx_int8_at_once")]  # fmt: skip
            rows.append([str(run.hidden), str(threads), f"{run.sentences:,}", *ratios])
    notes = ["Sentences/s of each embedcache case ÷ Flair's, same run, same thread count (medians)."]
    return Table("Headline: predict speed-up over Flair 0.15.1", columns, rows, notes)


def rates_table(runs: list[SizeRun]) -> Table:
    rows = []
    for run in runs:
        for threads, timings in run.timings.items():
            for case in CASE_LABELS:
                if case in timings:
                    rate, ratio = run.rate(threads, case), run.over_flair(threads, case)
                    rows.append(
                        [
                            str(run.hidden),
                            str(threads),
                            CASE_LABELS[case],
                            f"{rate:,.1f}",
                            format_ratio(ratio),
                        ]
                    )
    columns = ["LM hidden", "threads", "case", "sentences/s (median)", "÷ Flair"]
    return Table("Sentences per second", columns, rows)


def tags_table(runs: list[SizeRun]) -> Table:
    rows = [[str(r.hidden), f"{r.same_tags[0]:,} of {r.same_tags[1]:,}"] for r in runs]
    return Table(
        "Tags: torch vs ONNX fp32 (random tagger)", ["LM hidden", "sentences with identical tags"], rows
    )


def memory_table(runs: list[SizeRun]) -> Table:
    rows = [[CASE_LABELS[m.case], f"{m.lm_nbytes / 2**20:,.1f} MiB", f"{m.peak_rss_bytes / 2**20:,.0f} MiB"]
            for run in runs for m in run.memory]  # fmt: skip
    return Table(
        "Memory, LMs of hidden 2048", ["backend", "LM bytes (both LMs)", "peak RSS of predict"], rows
    )


def accuracy_table(accuracy: list[Accuracy]) -> Table:
    rows = [
        [CASE_LABELS[a.case], f"{100 * a.accuracy:.2f}", f"{100 * (a.accuracy - accuracy[0].accuracy):+.2f}"]
        for a in accuracy
    ]
    notes = [f"{accuracy[0].sentences:,} sentences." if accuracy else "Not measured in a quick run."]
    return Table(
        "Accuracy: en-upos on LinES test (UPOS)", ["backend", "accuracy %", "points vs torch"], rows, notes
    )


@dataclass(frozen=True)
class OnnxRun:
    """Everything the suite measured."""

    sizes: list[SizeRun]
    accuracy: list[Accuracy]


def render(plan: OnnxPlan, run: OnnxRun) -> SuiteResult:
    runs, accuracy = run.sizes, run.accuracy
    slice_text = f"the first {min(plan.sentences.values())} test sentences per LM size"
    data = {
        "sizes": [
            {
                "hidden": r.hidden,
                "sentences": r.sentences,
                "tokens": r.tokens,
                "timings": {str(t): {c: tm.to_json() for c, tm in ts.items()} for t, ts in r.timings.items()},
                "same_tags": list(r.same_tags),
                "memory": [m.__dict__ for m in r.memory],
            }
            for r in runs
        ],
        "accuracy": [a.__dict__ for a in accuracy],
    }
    return SuiteResult(
        suite="onnx",
        title="`onnx`: CPU predict with the char LMs on ONNX Runtime (fp32, int8) vs torch vs Flair 0.15.1",
        description=DESCRIPTION + quick_run_note(plan.quick, slice_text),
        tables=[
            headline_table(runs),
            rates_table(runs),
            tags_table(runs),
            memory_table(runs),
            accuracy_table(accuracy),
        ],
        data=data,
    )
