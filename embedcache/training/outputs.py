"""What rank 0 writes into ``out_dir`` besides the models: the settings, the scores and the run's log.

Every file is replaced atomically: readers see a whole file or the previous one, even if training is killed
mid-write.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from embedcache.atomic import AtomicFile
from embedcache.training.config import TrainingConfig
from embedcache.training.distributed import RankInfo
from embedcache.training.evaluation import Scores


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename."""
    with AtomicFile(path) as out:
        out.stream.write(text)
        out.commit()


def write_settings(out: Path, config: TrainingConfig) -> None:
    """``training.json``: every field of the run's :class:`TrainingConfig`."""
    write_atomically(out / "training.json", json.dumps(asdict(config), indent=1))


def write_results(out: Path, best_score: float, test: Scores | None, history: list[dict[str, float]]) -> None:
    """``results.json``, ``loss.tsv`` (one row per epoch) and ``results.txt`` (readable tables)."""
    results: dict[str, Any] = {
        "best_dev_score": best_score,
        "test": test.to_json() if test else None,
        "history": history,
    }
    write_atomically(out / "results.json", json.dumps(results, indent=1))
    lines = ["epoch\tlearning_rate\ttrain_loss\tdev_score\tseconds"]
    lines += [
        f"{r['epoch']}\t{r['learning_rate']:.6g}\t{r['train_loss']:.6f}\t{r['dev_score']:.6f}\t{r['seconds']:.2f}"
        for r in history
    ]
    write_atomically(out / "loss.tsv", "\n".join(lines) + "\n")
    write_atomically(
        out / "results.txt",
        f"best dev score {best_score:.4f}\n\ntest\n{test.table() if test else '(no test split)'}\n",
    )


@contextlib.contextmanager
def run_log(out: Path, ranks: RankInfo) -> Iterator[None]:
    """The package's log records, INFO and above, into ``training.log`` (other ranks: ``training-rankR.log``)
    meanwhile.

    The package logger is lowered to INFO for the run (it stays lower under ``--debug``), so a console
    handler of the user's own that takes INFO shows the epochs too, as Flair's trainer does; the command
    line's own console handler keeps its level (``--quiet``: warnings only).
    """
    name = "training.log" if ranks.is_main else f"training-rank{ranks.rank}.log"
    handler = logging.FileHandler(out / name, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package_log = logging.getLogger("embedcache")
    previous = package_log.level
    package_log.addHandler(handler)
    # The epochs' records go to the file even when the console shows only warnings (train --quiet).
    package_log.setLevel(min(package_log.getEffectiveLevel(), logging.INFO))
    try:
        yield
    finally:
        package_log.removeHandler(handler)
        package_log.setLevel(previous)
        handler.close()
