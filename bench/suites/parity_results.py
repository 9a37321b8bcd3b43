"""What the ``parity`` suite reports: WNUT-17 test span F1 of both libraries per seed; the mean difference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from bench.lms import describe
from bench.report import SuiteResult, Table, format_seconds, quick_run_note
from bench.specs import BATCH_SIZE, NER_TAGGER
from bench.training_runs import RunResult

TARGET_POINTS = 1.5


@dataclass(frozen=True)
class ParityPlan:
    """The slices, epochs and seeds of the runs, and the lines of text the word vectors are trained on."""

    n_train: int | None  # leading sentences (None: all)
    n_eval: int | None  # dev and test
    epochs: int
    seeds: tuple[int, ...]
    word_vector_lines: int | None  # leading lines of the social-media text (None: all)
    quick: bool


def render(plan: ParityPlan, results: Sequence[RunResult]) -> SuiteResult:
    return SuiteResult(
        suite="parity",
        title="`parity`: WNUT-17 test span F1, embedcache vs Flair 0.15.1 trained the same way",
        description=_description(plan),
        tables=[parity_table(results)],
        data={
            "plan": {k: v for k, v in asdict(plan).items() if k != "quick"},
            "runs": [r.to_json() for r in results],
        },
    )


def _description(plan: ParityPlan) -> str:
    lines = "all" if plan.word_vector_lines is None else f"the first {plan.word_vector_lines:,}"
    text = f"""\
BiLSTM-CRF NER on WNUT-17 trained by both libraries from the same embeddings: {describe("bundled")}, and
word2vec vectors trained by the suite before the runs on {lines} lines of `text/social_media_en.txt`
(`embedcache.embeddings.train_words` with its defaults: skip-gram, 100 dimensions, min count 3, 5 epochs,
one worker, seed 0, as `out/words/social_media_w2v.bin` was made; Flair's `WordEmbeddings`, embedcache's
`WordEmbeddings`, same lookup fallbacks). Same configuration: tagger hidden {NER_TAGGER.hidden_size}, CRF,
{NER_TAGGER.tag_scheme} tags, re-projection, word dropout 0.05, locked dropout 0.5, SGD at learning rate
{NER_TAGGER.learning_rate}, gradient clipping 5, anneal-on-plateau (factor 0.5, patience 3), mini-batches of
{BATCH_SIZE}, {plan.epochs} epochs. embedcache stores the
embeddings in `gpu` mode (the compute device, the CPU on a CPU-only run), Flair in `cpu` mode; storage does
not change what is learned. The two runs of a seed go side by side in two processes; their times are not a
speed comparison (see the `train` suite)."""
    return text + quick_run_note(plan.quick, "a smoke test on tiny slices for one epoch")


def parity_table(results: Sequence[RunResult]) -> Table:
    rows, differences = [], []
    for seed in sorted({r.spec.seed for r in results}):
        ours = next(r for r in results if r.spec.seed == seed and r.spec.library == "embedcache")
        flair = next(r for r in results if r.spec.seed == seed and r.spec.library == "flair")
        difference = 100 * ((ours.test_f1 or 0.0) - (flair.test_f1 or 0.0))
        differences.append(difference)
        rows.append(
            [str(seed), _percent(ours.test_f1), _percent(flair.test_f1), f"{difference:+.2f}",
             format_seconds(ours.train_call_s), format_seconds(flair.train_call_s)]
        )  # fmt: skip
    spec = results[0].spec
    sizes = (
        "the full corpus (3,394 / 1,009 / 1,287 sentences)"
        if spec.n_train is None
        else f"the first {spec.n_train} / {spec.n_dev} / {spec.n_test} sentences"
    )
    mean = sum(differences) / len(differences)
    if len(differences) > 1:
        rows.append(["mean", *_mean_f1s(results), f"{mean:+.2f}", "", ""])
    notes = [
        f"Train / dev / test: {sizes}. Test span micro-F1 (%) of the best-on-dev model: "
        "Flair's `test_score`, embedcache's `TrainingResult.test.micro_f1` (seqeval on BIO spans).",
        f"Target: |embedcache − Flair| ≤ {TARGET_POINTS} points, judged on the mean over seeds (one run's "
        "F1 moves by several points with the seed alone); "
        f"{'met' if abs(mean) <= TARGET_POINTS else 'not met'} in this run.",
    ]
    if any(r.test_f1 == 0 for r in results):
        notes.append(
            "A model with F1 0 predicted no correct entity: the comparison says little until both learn."
        )
    columns = ["seed", "embedcache F1", "Flair F1", "difference (points)", "embedcache call", "Flair call"]
    return Table("Test span F1", columns, rows, notes)


def _mean_f1s(results: Sequence[RunResult]) -> list[str]:
    """Mean test F1 (%) of embedcache's runs and of Flair's."""
    means = []
    for library in ("embedcache", "flair"):
        f1s = [r.test_f1 or 0.0 for r in results if r.spec.library == library]
        means.append(_percent(sum(f1s) / len(f1s)))
    return means


def _percent(f1: float | None) -> str:
    return "–" if f1 is None else f"{100 * f1:.2f}"
