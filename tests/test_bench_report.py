"""The benchmark record: a suite rewrites only its block, CUDA runs get their own, rates stay readable."""

from __future__ import annotations

from pathlib import Path

from bench.harness import Timing
from bench.report import RunInfo, SuiteResult, Table, recorded_per_device, update_markdown
from bench.suites.predict_results import CliInput, PredictRun
from bench.suites.startup_results import TORCH, Command, Measurement, StartupRun, headline_table

ENVIRONMENT = {
    "cpu": "test CPU", "cpu_cores": "2", "torch_threads": "1", "device": "cpu", "load_average": "0.10",
    "python": "3", "torch": "2", "flair": "0.15.1", "embedcache": "0", "numpy": "2", "os": "Linux",
    "date": "2026-11-25",
}  # fmt: skip


def suite_result(name: str, value: str) -> SuiteResult:
    table = Table("times", ["case", "s"], [["a", value]])
    return SuiteResult(name, f"`{name}`", "what it measures", [table], {})


def record(path: Path, result: SuiteResult) -> None:
    update_markdown(path, result, RunInfo("python -m bench", ENVIRONMENT, "0.20", 1.0))


def test_a_cpu_run_keeps_the_suite_name_and_a_cuda_run_gets_its_own():
    result = suite_result("embed", "1.0")
    assert recorded_per_device(result, "cpu") is result
    on_cuda = recorded_per_device(result, "cuda")
    assert (on_cuda.suite, on_cuda.title) == ("embed-cuda", "`embed`, on CUDA")


def test_rerunning_a_suite_replaces_its_block_and_keeps_the_others(tmp_path: Path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("Hand-written text.\n", encoding="utf-8")
    record(path, suite_result("embed", "1.0"))
    record(path, recorded_per_device(suite_result("embed", "2.0"), "cuda"))
    record(path, suite_result("embed", "3.0"))
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!-- bench:begin intro -->")
    assert "Hand-written text." in text
    assert text.count("<!-- bench:begin embed -->") == 1
    assert text.count("<!-- bench:begin embed-cuda -->") == 1
    assert "| a | 3.0 |" in text and "| a | 2.0 |" in text and "| a | 1.0 |" not in text


def test_no_rate_is_read_from_a_run_no_longer_than_the_start_up():
    inputs = [CliInput("startup", Path("one"), 1), CliInput("text", Path("t"), 100)]
    timings = {"cli_startup": Timing((2.0, 2.2, 2.1)), "cli_text": Timing((2.0, 2.05, 2.1))}
    run = PredictRun(100, 1000, {}, inputs, timings)
    assert run.cli_rate_after_startup(inputs[1]) is None
    assert run.cli_rate(inputs[1]) == 100 / 2.05
    faster_start = PredictRun(100, 1000, {}, inputs, {**timings, "cli_startup": Timing((1.55,))})
    assert faster_start.cli_rate_after_startup(inputs[1]) == 100 / (2.05 - 1.55)


def test_startup_targets_are_judged_against_the_torch_import_of_the_same_run():
    names = ["embedcache --version", "embedcache predict (one sentence)"]
    commands = [Command("import torch", "reference", []), *(Command(n, "this checkout", []) for n in names)]

    def verdicts(version_s: float, predict_s: float) -> list[str]:
        walls = {TORCH: [2.0, 1.0, 3.0], commands[1].key: [version_s], commands[2].key: [predict_s]}
        runs = {key: [Measurement(wall, wall) for wall in values] for key, values in walls.items()}
        return [row[-1] for row in headline_table(StartupRun(commands, runs, 3)).rows[1:]]

    assert verdicts(0.5, 3.0) == ["met", "met"]  # the median torch import is 2.0 s: 3.0 s is the bound
    assert verdicts(0.51, 3.01) == ["**missed**", "**missed**"]


def test_int8_accuracy_is_read_against_the_same_models_torch_score():
    from bench.suites.onnx_results import Accuracy, accuracy_table

    scores = [
        Accuracy("en-upos", "test.conllu", "accuracy", "torch", 0.9593, 1121),
        Accuracy("en-upos", "test.conllu", "accuracy", "onnx_int8", 0.9591, 1121),
        Accuracy("ner", "test.conll", "micro_f1", "torch", 0.40, 1287),
        Accuracy("ner", "test.conll", "micro_f1", "onnx_int8", 0.4125, 1287),
    ]
    rows = accuracy_table(scores).rows
    assert [(row[2], row[4], row[5]) for row in rows] == [
        ("accuracy %", "95.93", "+0.00"),
        ("accuracy %", "95.91", "-0.02"),
        ("span F1 (micro) %", "40.00", "+0.00"),
        ("span F1 (micro) %", "41.25", "+1.25"),
    ]
