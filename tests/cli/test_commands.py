"""embedcache train (smoke runs of every recipe), evaluate, info, profile, and --help of every command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from embedcache.data.conll import read_column_file
from embedcache.inference.tagger import SequenceTagger
from tests.cli.conftest import RunCli
from tests.conftest import REPO_ROOT

RECIPES = REPO_ROOT / "recipes"


@pytest.fixture
def empty_workdir(tmp_path, data_dir, monkeypatch) -> Path:
    """Run from an empty directory: the recipes' relative LM and vector paths name nothing there."""
    monkeypatch.setenv("EMBEDCACHE_DATA", str(data_dir))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("recipe", ["wnut17_ner.toml", "wnut17_ner_en.toml", "lines_upos.toml"])
def test_train_smoke_runs_a_tagger_recipe_and_writes_both_models(cli: RunCli, empty_workdir, recipe):
    tmp_path = empty_workdir
    run = cli("train", RECIPES / recipe, "--smoke", "--set", f"output_dir={tmp_path}", "--quiet")
    assert run.code == 0, run.err
    out = tmp_path / "smoke"
    for model in ("best-model", "final-model"):
        card = SequenceTagger.load(out / model).model_card
        assert card["smoke"]["train_sentences"] == 40 and card["data"]["license"].startswith("CC BY")
        assert all(entry["random_stand_in"] for entry in card["embeddings"])  # no LM files in a test checkout
        assert "best_dev_score" in card["scores"]
    assert f"models: {out / 'best-model'}, {out / 'final-model'}" in run.out
    # --quiet keeps the console to warnings; the run's log file still records the epochs.
    assert (
        "INFO" not in run.err
        and "INFO embedcache.training.trainer: epoch 1: " in (out / "training.log").read_text()
    )


def test_set_smoke_true_equals_smoke_and_overrides_reach_the_trainer(cli: RunCli, empty_workdir):
    tmp_path = empty_workdir
    run = cli(
        "train", RECIPES / "lines_upos.toml", "--set", "smoke=true", "--set", f"output_dir={tmp_path}",
        "--set", "training.storage_mode=none", "--set", "embeddings.1.direction=forward", "--quiet",
    )  # fmt: skip
    assert run.code == 0, run.err
    assert json.loads((tmp_path / "smoke" / "training.json").read_text())["storage_mode"] == "none"


def test_train_dispatches_a_charlm_recipe_to_the_lm_trainer(cli: RunCli, tmp_path):
    recipe = RECIPES / "charlm.toml"
    if not recipe.is_file():
        pytest.skip("recipes/charlm.toml is not in this checkout yet")
    run = cli(
        "train", recipe, "--smoke", "--set", f"out_dir={tmp_path}", "--set", "direction=forward", "--quiet"
    )
    assert run.code == 0, run.err
    assert (tmp_path / "smoke" / "forward.safetensors").is_file()
    assert "forward LM:" in run.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "training.epochs=3"], "[training] unknown key 'epochs'; did you mean 'max_epochs'?"),
        (["--set", "training.max_epochs=three"], "[training] max_epochs = 'three' should be an int"),
        (["--set", "nonsense"], "--set nonsense: expected KEY=VALUE"),
        ([], "embeddings[0]: out/charlm/forward not found; train it first"),
        (["--set", "training.memory_budget_bytes=-5"],
         "[training] memory_budget_bytes must be a non-negative int of bytes or unset, got -5"),
    ],
)  # fmt: skip
def test_a_bad_recipe_or_override_gives_code_2_and_one_line(cli: RunCli, empty_workdir, args, message):
    tmp_path = empty_workdir
    run = cli("train", RECIPES / "wnut17_ner.toml", "--set", f"output_dir={tmp_path}", *args)
    assert (run.code, run.err.count("\n")) == (2, 1)
    assert message in run.err
    assert message.startswith("--set") or f"{RECIPES / 'wnut17_ner.toml'}: " in run.err  # names the recipe


def test_a_missing_or_invalid_recipe_file_gives_code_2(cli: RunCli, tmp_path):
    assert "no such recipe file" in cli("train", tmp_path / "nope.toml").err
    broken = tmp_path / "broken.toml"
    broken.write_text("[data\n", encoding="utf-8")
    run = cli("train", broken)
    assert (run.code, run.err.count("\n")) == (2, 1) and f"{broken}: invalid TOML" in run.err


def test_evaluate_prints_scores_and_writes_them_as_json(cli: RunCli, ner_model, tmp_path, data_dir):
    gold = tmp_path / "gold.conll"
    sentences = list(read_column_file(data_dir / "wnut17" / "dev.conll"))[:50]
    gold.write_text(
        "".join(
            "".join(f"{t}\t{g}\n" for t, g in zip(s.tokens, s.tags, strict=True)) + "\n" for s in sentences
        )
    )
    run = cli("evaluate", ner_model, gold, "--output", tmp_path / "scores.json")
    assert run.code == 0, run.err
    scores = json.loads((tmp_path / "scores.json").read_text(encoding="utf-8"))
    assert scores["n_sentences"] == 50 and scores["n_tokens"] == sum(len(s) for s in sentences)
    assert run.out.startswith(
        f"{gold}: sentences 50, tokens {scores['n_tokens']}, accuracy {scores['accuracy']:.4f}"
    )
    assert "micro F1" in run.out
    assert json.loads(cli("evaluate", ner_model, gold, "--json").out)["micro_f1"] == scores["micro_f1"]


def test_evaluate_reports_per_tag_scores_and_confusions_for_plain_tags(cli: RunCli, tmp_path, data_dir):
    conllu = (data_dir / "ud_english_lines" / "dev.conllu").read_text(encoding="utf-8")
    gold = tmp_path / "gold.conllu"
    gold.write_text("\n\n".join(conllu.split("\n\n")[:30]) + "\n\n", encoding="utf-8")
    scores = json.loads(cli("evaluate", "en-upos", gold, "--json").out)
    assert scores["n_sentences"] == 30 and scores["per_type"]["NOUN"]["support"] > 0
    errors = round(scores["n_tokens"] * (1 - scores["accuracy"]))
    assert 0 < len(scores["confusions"]) <= 10 and sum(c["count"] for c in scores["confusions"]) <= errors
    table = cli("evaluate", "en-upos", gold).out
    first = scores["confusions"][0]
    assert f"  {first['gold']} -> {first['predicted']}: {first['count']}" in table


def test_evaluate_needs_gold_tags(cli: RunCli, ner_model, tmp_path):
    tokens_only = tmp_path / "tokens.conll"
    tokens_only.write_text("Anna\nlives\n", encoding="utf-8")
    run = cli("evaluate", ner_model, tokens_only)
    assert (run.code, run.err.count("\n")) == (2, 1) and f"{tokens_only}: no gold tag column" in run.err


def test_info_prints_the_model_card_and_configuration(cli: RunCli, ner_model):
    run = cli("info", ner_model)
    assert run.code == 0
    assert "tags        ner, BIOES, 13: O B-LOC I-LOC E-LOC S-LOC" in run.out
    assert "type=charlm direction=forward hidden_size=16" in run.out
    assert "  name: tiny-ner\n  license: CC0\n" in run.out
    summary = json.loads(cli("info", ner_model, "--json").out)
    assert summary["tagger"]["hidden_size"] == 8 and summary["model_card"]["license"] == "CC0"


def test_info_of_a_directory_that_is_no_model_gives_code_2(cli: RunCli, tmp_path):
    run = cli("info", tmp_path)
    assert (run.code, run.err.count("\n")) == (2, 1) and f"{tmp_path}/config.json: missing" in run.err


def test_profile_prints_one_row_per_mode_with_exact_retained_bytes(cli: RunCli, data_dir):
    run = cli("profile", "--data", data_dir / "wnut17" / "train.conll", "--sentences", "20", "--hidden", "8")
    assert run.code == 0, run.err
    n_tokens = sum(len(s) for s in list(read_column_file(data_dir / "wnut17" / "train.conll"))[:20])
    rows = {line.split()[0]: line.split() for line in run.out.splitlines()[2:] if not line.startswith("note")}
    assert list(rows) == ["none", "cpu", "gpu"]
    dim = 2 * 8  # random forward and backward LMs
    assert [int(rows[mode][4]) for mode in rows] == [0, n_tokens * dim * 4, n_tokens * dim * 4]
    assert all(int(rows[mode][4]) == int(rows[mode][5]) for mode in rows)  # retained == expected


def test_profile_uses_the_lms_of_a_model(cli: RunCli, ner_model, data_dir):
    run = cli(
        "profile", "--model", ner_model, "--data", "wnut17", "--sentences", "5", "--modes", "cpu", "--json"
    )
    report = json.loads(run.out)
    assert report["dim"] == 16 and [row["mode"] for row in report["rows"]] == ["cpu"]
    assert report["rows"][0]["retained_bytes"] == report["tokens"] * 16 * 4


@pytest.mark.parametrize("command", [[], ["predict"], ["train"], ["evaluate"], ["profile"], ["info"]])
def test_help_of_every_command_shows_examples_and_exits_0(cli: RunCli, command):
    run = cli(*command, "--help")
    assert run.code == 0
    assert "examples:" in run.out and run.out.startswith("usage: embedcache")


@pytest.mark.slow
def test_resuming_from_a_checkpoint_that_does_not_fit_gives_code_2_and_says_what_differs(
    cli: RunCli, empty_workdir
):
    recipe, out = RECIPES / "lines_upos.toml", empty_workdir / "smoke"
    first = cli("train", recipe, "--smoke", "--set", f"output_dir={empty_workdir}", "--quiet")
    assert first.code == 0, first.err
    checkpoint = out / "checkpoint.pt"
    start_over = "delete it (or train into another output directory) to start over"
    for changes, difference in [
        (["--set", "smoke.hidden_size=24"], "written with hidden_size=16, but this run has hidden_size=24"),
        (
            ["--set", "training.optimizer=adamw"],
            "written with optimizer='sgd', but this run has optimizer='adamw'",
        ),
    ]:
        run = cli("train", recipe, "--smoke", "--set", f"output_dir={empty_workdir}", "--set",
                  "training.resume=true", *changes, "--quiet")  # fmt: skip
        [error] = [line for line in run.err.splitlines() if "error" in line]  # the others: random stand-ins
        assert run.code == 2
        assert (
            error == f"embedcache train: error: {checkpoint}: {difference}; resume with the checkpoint's "
            f"settings, or {start_over}"
        )
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    run = cli("train", recipe, "--smoke", "--set", f"output_dir={empty_workdir}", "--set",
              "training.resume=true", "--quiet")  # fmt: skip
    [error] = [line for line in run.err.splitlines() if "error" in line]
    assert run.code == 2
    assert error.startswith(f"embedcache train: error: {checkpoint}: damaged checkpoint (")
    assert error.endswith(start_over)


def train_in_a_new_process(workdir: Path, seed: int) -> dict[str, bytes]:
    """The weight files of the final model of a smoke run with ``seed``, trained by a fresh interpreter."""
    out = workdir / f"seed{seed}-{len(list(workdir.iterdir()))}"
    command = "import sys; from embedcache.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run(
        [sys.executable, "-c", command, "train", str(RECIPES / "lines_upos.toml"), "--smoke", "--quiet",
         "--set", f"output_dir={out}", "--set", f"training.seed={seed}"],
        cwd=workdir, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)},  # this checkout
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {path.name: path.read_bytes() for path in (out / "smoke" / "final-model").glob("*.safetensors")}


@pytest.mark.slow
def test_the_seed_decides_every_weight_across_processes(empty_workdir):
    first, again, other = (train_in_a_new_process(empty_workdir, seed) for seed in (0, 0, 1))
    assert sorted(first) == ["embedding-0.safetensors", "embedding-1.safetensors", "tagger.safetensors"]
    assert first == again  # the random LM and word stand-ins, the initial weights, dropout and shuffling
    assert all(first[name] != other[name] for name in first)
