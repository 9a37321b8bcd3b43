"""Suite ``parity``: WNUT-17 test span F1 of embedcache's ``Trainer`` and Flair 0.15.1's ``ModelTrainer``.

Both libraries train the same tagger (hidden 256, CRF, BIOES, re-projection, Flair's default dropouts) on the
same embeddings (the char LMs of ``out/charlm`` and the word2vec vectors of ``out/words``), with SGD at the
same learning rate, batch size, epochs and seed. Issue #4 asks that embedcache's test F1 be within 1.5 points
of Flair's; it is judged on the mean difference over the seeds. The two runs of a seed go side by side in two
spawned processes: F1 does not depend on timing.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context

import torch

from bench.harness import BenchConfig
from bench.report import SuiteResult, Table, format_seconds, quick_run_note
from bench.suites.train import LM_DIR, WORD_VECTORS, run_spec
from bench.suites.train_results import RunResult, TrainSpec

TARGET_POINTS = 1.5


@dataclass(frozen=True)
class Plan:
    n_train: int | None  # leading sentences (None: all)
    n_eval: int | None  # dev and test
    epochs: int
    seeds: tuple[int, ...]


# Three seeds: WNUT-17 test F1 moves by several points with the seed alone (seed 0: embedcache 28.62 vs
# Flair 26.13; seed 1: 26.26 vs 27.10), so one pair cannot show a 1.5-point parity.
FULL = Plan(None, None, 20, (0, 1, 2))
QUICK = Plan(100, 40, 1, (0,))


def run(config: BenchConfig) -> SuiteResult:
    plan = QUICK if config.quick else FULL
    base = TrainSpec(
        "embedcache", "gpu", config.data_dir, str(config.device), torch.get_num_threads(),
        plan.n_train, plan.n_eval, plan.n_eval, plan.epochs, word_vectors=True,
    )  # fmt: skip
    specs = [
        replace(base, library=library, storage=storage, seed=seed)
        for seed in plan.seeds
        for library, storage in (("embedcache", "gpu"), ("flair", "cpu"))
    ]
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(run_spec, specs))
    return SuiteResult(
        suite="parity",
        title="`parity`: WNUT-17 test span F1, embedcache vs Flair 0.15.1 trained the same way",
        description=_description(plan, config.quick),
        tables=[parity_table(results)],
        data={"plan": {**plan.__dict__}, "runs": [r.to_json() for r in results]},
    )


def _description(plan: Plan, quick: bool) -> str:
    text = f"""\
BiLSTM-CRF NER on WNUT-17 trained by both libraries from the same embeddings: the char LMs of `{LM_DIR.name}`
(forward + backward, hidden 256; Flair reads `forward.pt`/`backward.pt`, embedcache the safetensors copies of
the same weights) and the word2vec vectors `{WORD_VECTORS.name}` (Flair's `WordEmbeddings`, embedcache's
`WordEmbeddings`, same lookup fallbacks). Same configuration: tagger hidden 256, CRF, BIOES tags,
re-projection, word dropout 0.05, locked dropout 0.5, SGD at learning rate 0.1, gradient clipping 5,
anneal-on-plateau (factor 0.5, patience 3), mini-batches of 32, {plan.epochs} epochs. embedcache stores the
embeddings in `gpu` mode (the compute device, the CPU on a CPU-only run), Flair in `cpu` mode; storage does
not change what is learned. The two runs of a seed go side by side in two processes; their times are not a
speed comparison (see the `train` suite)."""
    return text + quick_run_note(quick, "a smoke test on tiny slices for one epoch")


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
