"""Every bench suite has one shape (plan, measure, render, registered once), and none needs trained LMs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.harness import BenchConfig, Suite
from bench.lms import DIRECTIONS, write_char_lms
from bench.report import SuiteResult
from bench.suites import SUITES
from tests.conftest import REPO_ROOT

BENCH = REPO_ROOT / "bench"


def quick_config(data_dir: Path) -> BenchConfig:
    return BenchConfig(data_dir=data_dir, device=torch.device("cpu"), repeats=1, warmup=0, quick=True)


@pytest.mark.parametrize("name", sorted(SUITES))
def test_every_suite_declares_its_plan_measure_and_render_in_its_two_modules(name: str, data_dir: Path):
    suite = SUITES[name]
    assert isinstance(suite, Suite) and suite.name == name
    assert suite.plan.__module__ == suite.measure.__module__ == f"bench.suites.{name}"
    assert suite.render.__module__ == f"bench.suites.{name}_results"
    assert suite.lms and set(suite.lms) <= {"random", "bundled"}
    assert suite.plan(quick_config(data_dir)).quick is True  # planning measures nothing


def test_no_suite_reads_lms_or_vectors_trained_beforehand():
    for path in BENCH.rglob("*.py"):
        code = path.read_text(encoding="utf-8")
        assert 'REPO_ROOT / "out"' not in code, path
        assert "out/charlm/forward.pt" not in code, path


@pytest.mark.parametrize("weights", ["random", "bundled"])
def test_both_libraries_read_the_same_lm_weights(weights: str, tmp_path: Path):
    from flair.data import Sentence
    from flair.embeddings import FlairEmbeddings

    import embedcache as ec
    from bench.lms import bundled_lm_hidden_size

    lms = write_char_lms(tmp_path, weights)  # type: ignore[arg-type]
    for direction in DIRECTIONS:
        theirs, ours = Sentence(["Hello", "world", "!"]), Sentence(["Hello", "world", "!"])
        FlairEmbeddings(lms.flair_path(direction)).embed(theirs)
        ec.CharLMEmbeddings(lms.embedcache_path(direction)).embed(ours)
        expected = torch.stack([token.get_embedding() for token in theirs])
        assert expected.shape == (3, 256 if weights == "random" else bundled_lm_hidden_size())
        torch.testing.assert_close(torch.stack([token.get_embedding() for token in ours]), expected)


@pytest.mark.slow
def test_the_predict_suite_runs_in_a_directory_with_nothing_trained(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from bench.suites.predict_results import PredictPlan

    monkeypatch.chdir(tmp_path)  # no out/charlm here (nor anywhere the suite looks)
    suite = SUITES["predict"]
    plan = PredictPlan(sentences=4, quick=True)
    result = suite.render(plan, suite.measure(plan, quick_config(data_dir)))
    assert isinstance(result, SuiteResult) and result.suite == "predict"
    assert result.data["sentences"] == 4
    assert "random char LMs of the recipe's shape" in result.description
    assert list(tmp_path.iterdir()) == []  # everything it wrote went to temporary directories
