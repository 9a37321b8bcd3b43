"""What the ``onnx`` suite reports: predict sentences/s per LM size and backend, memory, int8 accuracy."""

from __future__ import annotations

from dataclasses import dataclass

from bench.harness import Timing
from bench.report import SuiteResult, Table, format_ratio, quick_run_note
from bench.specs import BATCH_SIZE, CALL_SENTENCES

DESCRIPTION = f"""\
`SequenceTagger.predict` on WNUT-17 test (`wnut17/test.conll`, in file order) on the CPU, {BATCH_SIZE}
sentences a batch, storage `none`, calls of {CALL_SENTENCES} sentences, the cases alternating call by call:
Flair 0.15.1, embedcache in torch, and embedcache with its char LMs and its head (re-projection → BiLSTM →
emission scores) in ONNX Runtime, fp32 and int8 (`SequenceTagger.load(model, backend="onnx", int8=...)`;
the graphs exported with `torch.onnx.export` and, for int8, quantised with
`onnxruntime.quantization.quantize_dynamic`; word vectors, extraction and the CRF's Viterbi stay in torch).
Both libraries' taggers have one shape: a forward and a backward char LM of the given hidden size (one layer,
character vectors of 32), re-projection, a BiLSTM of hidden 256, a CRF, the BIOES tags of WNUT-17's six
entity types. **All weights are random** (seeded; Flair and embedcache share the LM weights): the time to
tag does not depend on them. Each LM size tags a prefix of the test set (the sentence counts are in the
table; fewer for larger LMs): on this shared 2-core machine Flair's fp32 LMs of hidden 2048 alone would take
minutes per round on the whole set.

Threads: torch's intra-op threads (`torch.set_num_threads`), ONNX Runtime's `intra_op_num_threads`; the
record was run with `OMP_WAIT_POLICY=PASSIVE` in the environment (on a shared 2-core machine, spinning
OpenMP threads made every 2-thread case 10-40× slower, Flair's and torch's alike).
"in turn": the two LMs one after the other, each session on all threads; "at once": the two LMs in two
Python threads (ONNX Runtime releases the GIL), each session on half the threads. The head runs after them
on all threads.

Tags: torch vs ONNX fp32 on the same random tagger: all of WNUT-17 test at hidden 256, the timed
sentences at 1024 and 2048; and on the trained models' whole test sets. Memory: the bytes of the LMs and
the head (torch fp32 parameters, ONNX files) and the peak RSS (GNU `time`) of `embedcache predict --threads
1` tagging the hidden-2048 sentences, start-up included, ONNX exports already in the cache. Accuracy:
trained models, `embedcache evaluate MODEL TEST --backend …`: the bundled `en-upos` (char LMs of hidden 512,
fastText word vectors, BiLSTM-CRF) on LinES test (UPOS accuracy), and, given `--ner-model`, a WNUT-17 NER
model on WNUT-17 test (span micro F1)."""

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
    ner_model: str | None = None  # --ner-model: a trained WNUT-17 NER model to score


@dataclass(frozen=True)
class Memory:
    case: str
    network_nbytes: int  # the char LMs and the head
    peak_rss_bytes: int


@dataclass(frozen=True)
class Accuracy:
    """One trained model's score on its test file (``metric``: ``accuracy`` or span ``micro_f1``)."""

    model: str
    test: str
    metric: str
    case: str
    score: float
    sentences: int


@dataclass(frozen=True)
class TrainedTags:
    """Test sentences whose tags torch and ONNX fp32 agree on, for one trained model."""

    model: str
    test: str
    identical: int
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


def tags_table(runs: list[SizeRun], trained: list[TrainedTags]) -> Table:
    rows = [[f"random, LMs of hidden {r.hidden}", "WNUT-17 test", f"{r.same_tags[0]:,} of {r.same_tags[1]:,}"]
            for r in runs]  # fmt: skip
    rows += [[t.model, t.test, f"{t.identical:,} of {t.sentences:,}"] for t in trained]
    columns = ["tagger", "sentences", "sentences with identical tags"]
    return Table("Tags: torch vs ONNX fp32", columns, rows)


def memory_table(runs: list[SizeRun]) -> Table:
    rows = [[CASE_LABELS[m.case], f"{m.network_nbytes / 2**20:,.1f} MiB",
             f"{m.peak_rss_bytes / 2**20:,.0f} MiB"] for run in runs for m in run.memory]  # fmt: skip
    columns = ["backend", "bytes of the LMs and the head", "peak RSS of predict"]
    return Table("Memory, LMs of hidden 2048", columns, rows)


METRICS = {"accuracy": "accuracy %", "micro_f1": "span F1 (micro) %"}


def accuracy_table(accuracy: list[Accuracy], ner_model: str | None = None) -> Table:
    torch_scores = {(a.model, a.test): a.score for a in accuracy if a.case == "torch"}
    rows = [
        [a.model, f"{a.test} ({a.sentences:,} sentences)", METRICS[a.metric], CASE_LABELS[a.case],
         f"{100 * a.score:.2f}", f"{100 * (a.score - torch_scores[a.model, a.test]):+.2f}"]
        for a in accuracy
    ]  # fmt: skip
    notes = [] if accuracy else ["Not measured in a quick run."]
    if accuracy and ner_model is None:
        notes.append("No WNUT-17 NER model scored: add `--ner-model DIR` (`recipes/wnut17_ner_en.toml`).")
    columns = ["model", "test", "metric", "backend", "score", "points vs torch"]
    return Table("Accuracy of trained models: torch vs ONNX fp32 vs ONNX int8", columns, rows, notes)


@dataclass(frozen=True)
class OnnxRun:
    """Everything the suite measured."""

    sizes: list[SizeRun]
    accuracy: list[Accuracy]
    trained_tags: list[TrainedTags]


def render(plan: OnnxPlan, run: OnnxRun) -> SuiteResult:
    runs, accuracy, trained_tags = run.sizes, run.accuracy, run.trained_tags
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
        "trained_tags": [t.__dict__ for t in trained_tags],
    }
    return SuiteResult(
        suite="onnx",
        title="`onnx`: CPU predict, char LMs and head on ONNX Runtime (fp32, int8) vs torch vs Flair 0.15.1",
        description=DESCRIPTION + quick_run_note(plan.quick, slice_text),
        tables=[
            headline_table(runs),
            rates_table(runs),
            tags_table(runs, trained_tags),
            memory_table(runs),
            accuracy_table(accuracy, plan.ner_model),
        ],
        data=data,
    )
