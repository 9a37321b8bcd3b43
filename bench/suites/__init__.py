"""The registry of suites: name → :class:`~bench.harness.Suite`.

Every suite is two modules: ``NAME_results.py`` (its plan, what it measures as plain dataclasses, and
``render``: the tables of the record) and ``NAME.py`` (``plan``, ``measure`` and ``SUITE``). To add a suite,
write both and add its ``SUITE`` here.
"""

from __future__ import annotations

from bench.harness import Suite
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

SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        cache.SUITE,
        convert.SUITE,
        ddp.SUITE,
        embed.SUITE,
        onnx.SUITE,
        parity.SUITE,
        pipeline.SUITE,
        predict.SUITE,
        predict_nproc.SUITE,
        retained.SUITE,
        startup.SUITE,
        train.SUITE,
    )
}
