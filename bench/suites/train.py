"""Suite ``train``: BiLSTM-CRF training on WNUT-17, embedcache's ``Trainer`` against Flair 0.15.1's.

Epoch times per storage mode on the first 1,000 train sentences, with peak memory and the *floor*: the
tagger's own forward, backward and optimiser step on padded tensors assembled beforehand. The runs are
:mod:`bench.training_runs`, each in a fresh spawned process; the char LMs are random, of the recipe's size
(:func:`bench.lms.write_char_lms`): an epoch's time does not depend on their weights.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from bench.harness import BenchConfig, Suite
from bench.lms import write_char_lms
from bench.suites.train_results import EPOCH_MODES, TrainPlan, render
from bench.training_runs import RunResult, TrainSpec, run_in_fresh_process

FULL = TrainPlan(1000, 200, 2, quick=False)
QUICK = TrainPlan(100, 20, 1, quick=True)


def plan(config: BenchConfig) -> TrainPlan:
    return QUICK if config.quick else FULL


def measure(plan: TrainPlan, config: BenchConfig) -> list[RunResult]:
    with tempfile.TemporaryDirectory(prefix="bench-train-lms-") as lm_dir:
        write_char_lms(Path(lm_dir), "random")
        base = TrainSpec(
            "embedcache", "none", config.data_dir, Path(lm_dir), str(config.device), torch.get_num_threads(),
            plan.epoch_train, plan.epoch_dev, 0, plan.epoch_epochs,
        )  # fmt: skip
        specs = [
            replace(base, library=lib, storage=mode) for lib, modes in EPOCH_MODES.items() for mode in modes
        ]
        specs.append(replace(base, library="floor", storage="gpu"))
        return [run_in_fresh_process(spec) for spec in specs]


SUITE = Suite("train", ("random",), plan, measure, render)
