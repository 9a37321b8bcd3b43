"""Suite ``parity``: WNUT-17 test span F1 of embedcache's ``Trainer`` and Flair 0.15.1's ``ModelTrainer``.

Both libraries train the same tagger (hidden 256, CRF, BIOES, re-projection, Flair's default dropouts) on the
same embeddings, with SGD at the same learning rate, batch size, epochs and seed. F1 depends on the weights,
so the char LMs are the bundled ``en-upos`` model's trained ones (:func:`bench.lms.write_char_lms`), and the
word2vec vectors are trained here before the runs (a minute on the whole text). Issue #4 asks that
embedcache's test F1 be within 1.5 points of Flair's; it is judged on the mean difference over the seeds. The
two runs of a seed go side by side in two spawned processes: F1 does not depend on timing.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

import torch

from bench.harness import BenchConfig, Suite
from bench.lms import write_char_lms
from bench.specs import SOCIAL_MEDIA_TEXT
from bench.suites.parity_results import ParityPlan, render
from bench.training_runs import RunResult, TrainSpec, run_spec
from embedcache.embeddings.train_words import train_word_vectors

# Three seeds: WNUT-17 test F1 moves by several points with the seed alone (seed 0: embedcache 28.62 vs
# Flair 26.13; seed 1: 26.26 vs 27.10), so one pair cannot show a 1.5-point parity.
FULL = ParityPlan(None, None, 20, (0, 1, 2), word_vector_lines=None, quick=False)
QUICK = ParityPlan(100, 40, 1, (0,), word_vector_lines=2000, quick=True)


def plan(config: BenchConfig) -> ParityPlan:
    return QUICK if config.quick else FULL


def measure(plan: ParityPlan, config: BenchConfig) -> list[RunResult]:
    with tempfile.TemporaryDirectory(prefix="bench-parity-") as root:
        lms = write_char_lms(Path(root) / "lms", "bundled")
        words = Path(root) / "social_media_w2v.bin"
        train_word_vectors(config.data_dir / SOCIAL_MEDIA_TEXT, words, max_lines=plan.word_vector_lines)
        base = TrainSpec(
            "embedcache", "gpu", config.data_dir, lms.folder, str(config.device), torch.get_num_threads(),
            plan.n_train, plan.n_eval, plan.n_eval, plan.epochs, word_vectors=words,
        )  # fmt: skip
        specs = [
            replace(base, library=library, storage=storage, seed=seed)
            for seed in plan.seeds
            for library, storage in (("embedcache", "gpu"), ("flair", "cpu"))
        ]
        with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
            return list(pool.map(run_spec, specs))


SUITE = Suite("parity", ("bundled",), plan, measure, render)
