"""Crash safety: training killed with SIGKILL in every phase resumes to the model of an uninterrupted run.

The kills run in ``train_worker.py`` (one warm process forking a child per attempt, see its docstring); this
module asserts on its report. Every file a reader opens (checkpoint, best and final model, published
caches) must be absent or valid after each kill, the resumed run must end with the exact weights of an
uninterrupted one, and no temporary file may outlive the resumed run. Below, the atomic-write pieces those
guarantees rest on are tested directly.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import embedcache as ec
import embedcache.atomic as atomic
from embedcache.atomic import remove_leftovers
from embedcache.inference.tagger import SequenceTagger
from embedcache.training.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import make_lm
from tests.reliability.train_worker import PLANS

WORKER = Path(__file__).with_name("train_worker.py")
SEEDS = (0, 1, 2)
UNTARGETED = ("random", "finish")


@pytest.fixture(scope="module")
def report(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    work = tmp_path_factory.mktemp("crash")
    result = subprocess.run(
        [sys.executable, str(WORKER), str(data_dir), str(work), str(work / "report.json"),
         "--seeds", *map(str, SEEDS)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((work / "report.json").read_text(encoding="utf-8"))


def attempts(report: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [kill for seed in report for kill in seed["kills"]]


def test_every_reader_path_is_absent_or_valid_after_every_kill(report: list[dict[str, Any]]) -> None:
    assert len(attempts(report)) == len(SEEDS) * sum(len(plans) for plans in PLANS.values())
    for kill in attempts(report):
        assert kill["problems"] == [], kill


def test_kills_land_in_every_phase_of_both_storage_modes(report: list[dict[str, Any]]) -> None:
    killed = [kill for kill in attempts(report) if kill["killed"]]
    landed = collections.Counter((kill["mode"], kill["landed"]) for kill in killed)
    print(f"\nkills landed / tried: {len(killed)} / {sum(k['plan'] != 'finish' for k in attempts(report))}")
    print("\n".join(f"  {mode:4} {phase:16} {count}" for (mode, phase), count in sorted(landed.items())))
    assert len(killed) >= 20
    for mode, plans in PLANS.items():
        for plan in set(plans) - set(UNTARGETED):
            assert landed[(mode, plan)] >= 1, (mode, plan)
    for kill in killed:
        if kill["plan"] not in UNTARGETED:
            assert kill["landed"] == kill["plan"], kill  # a targeted kill hit its phase
    finishes = [kill for kill in attempts(report) if kill["plan"] == "finish"]
    assert all(kill["exit_code"] == 0 and not kill["killed"] for kill in finishes)


def test_resumed_runs_end_with_the_uninterrupted_model_and_no_temporary_files(
    report: list[dict[str, Any]],
) -> None:
    assert {(seed["mode"], seed["seed"]) for seed in report} == {(m, s) for m in PLANS for s in SEEDS}
    for seed in report:
        final = seed["final"]
        assert final["exit_code"] == 0, seed
        assert final["problems"] == [] and final["leftovers"] == [], seed
        assert final["equal_to_uninterrupted"] and final["best_model_loads"], seed
        assert final["epochs"] == [1, 2, 3], seed
        assert final["predicted_tokens"] == final["test_tokens"] > 0, seed


def test_leftovers_of_dead_writers_go_and_those_of_running_ones_stay(tmp_path: Path, dead_pid: int) -> None:
    target = tmp_path / "checkpoint.pt"
    dead_file = tmp_path / f".checkpoint.pt.tmp-{dead_pid}-x1"
    live_file = tmp_path / f".checkpoint.pt.tmp-{os.getpid()}-x2"
    dead_dir = tmp_path / f".checkpoint.pt.old-{dead_pid}"
    other = tmp_path / f".other.tmp-{dead_pid}-x3"
    for path in (dead_file, live_file, other):
        path.write_bytes(b"half")
    dead_dir.mkdir()
    (dead_dir / "weights").write_bytes(b"half")
    assert sorted(remove_leftovers(target)) == sorted([dead_file, dead_dir])
    assert live_file.exists() and other.exists()


def test_saving_a_checkpoint_removes_a_killed_writers_temporary_file(tmp_path: Path, dead_pid: int) -> None:
    leftover = tmp_path / f".checkpoint.pt.tmp-{dead_pid}-abc"
    leftover.write_bytes(b"half a checkpoint")
    save_checkpoint(tmp_path, {"epochs_done": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert load_checkpoint(tmp_path)["epochs_done"] == 1


def tiny_tagger(seed: int) -> SequenceTagger:
    torch.manual_seed(seed)
    return SequenceTagger(ec.CharLMEmbeddings(make_lm(True, 8, seed=seed)), ["O", "X"], "pos", hidden_size=4)


def test_a_model_is_replaced_in_one_swap_and_killed_saves_are_cleaned_up(
    tmp_path: Path, dead_pid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if atomic._renameat2 is None:
        pytest.skip("no renameat2 here: the two-rename fallback is tested below")
    target = tmp_path / "model"
    tiny_tagger(0).save(target)
    (tmp_path / f".model.tmp-{dead_pid}-q").mkdir()  # what a save killed before its swap leaves
    (tmp_path / f".model.old-{dead_pid}").mkdir()  # ... and one killed between the fallback's renames
    retired: list[Path] = []
    monkeypatch.setattr(atomic, "_retire", retired.append)
    newer = tiny_tagger(1)
    newer.save(target)
    assert retired == []  # no moment without a model at the path: it was swapped in, not renamed twice
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    loaded = SequenceTagger.load(target)
    assert torch.equal(loaded.emission.weight, newer.emission.weight)


def test_without_renameat2_a_model_is_still_replaced_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(atomic, "_renameat2", None)
    target = tmp_path / "model"
    tiny_tagger(0).save(target)
    newer = tiny_tagger(1)
    newer.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert torch.equal(SequenceTagger.load(target).emission.weight, newer.emission.weight)
