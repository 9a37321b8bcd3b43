"""The registry of suites: name → function from a :class:`~bench.harness.BenchConfig` to a result.

To add a suite, write ``bench/suites/NAME.py`` with a ``run(config) -> SuiteResult`` function and add it here.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.harness import BenchConfig
from bench.report import SuiteResult
from bench.suites import (
    cache,
    convert,
    ddp,
    embed,
    onnx,
    parity,
    pipeline,
    predict,
    predict_nproc,
    retained,
    startup,
    train,
)

SUITES: dict[str, Callable[[BenchConfig], SuiteResult]] = {
    "cache": cache.run,
    "convert": convert.run,
    "ddp": ddp.run,
    "embed": embed.run,
    "onnx": onnx.run,
    "parity": parity.run,
    "pipeline": pipeline.run,
    "predict": predict.run,
    "predict_nproc": predict_nproc.run,
    "retained": retained.run,
    "startup": startup.run,
    "train": train.run,
}
