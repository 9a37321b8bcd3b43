"""``predict --model A --model B`` (one column or key per model) and ``predict --nproc N`` (sharded)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import RunCli, conll_sentences
from tests.cli.test_predict import social_media_lines

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def posts(tmp_path: Path, data_dir: Path) -> Path:
    path = tmp_path / "posts.txt"
    path.write_text("\n".join(social_media_lines(data_dir, 40)) + "\n", encoding="utf-8")
    return path


def test_two_models_give_one_column_each_equal_to_their_own_runs(cli: RunCli, pos_model, ner_model, posts):
    both = cli("predict", "--model", pos_model, "--model", ner_model, posts, "--quiet")
    pos, ner = (cli("predict", "--model", model, posts, "--quiet") for model in (pos_model, ner_model))
    assert both.code == pos.code == ner.code == 0
    assert both.out.startswith("# models = upos ner\n")
    expected = [
        [(token, upos, tag) for (token, upos), (_, tag) in zip(p, n, strict=True)]
        for p, n in zip(conll_sentences(pos.out), conll_sentences(ner.out), strict=True)
    ]
    assert conll_sentences(both.out) == expected
    comments = [line for line in both.out.splitlines()[1:] if line.startswith("# ")]
    assert comments == [line for line in pos.out.splitlines() if line.startswith("# ")]


def test_two_models_give_one_json_key_each(cli: RunCli, pos_model, ner_model, posts):
    both = cli("predict", "-m", pos_model, "-m", ner_model, posts, "--format-out", "jsonl", "--quiet")
    alone = {
        name: cli("predict", "-m", model, posts, "--format-out", "jsonl", "--quiet")
        for name, model in (("upos", pos_model), ("ner", ner_model))
    }
    for line, *own in zip(*(run.out.splitlines() for run in (both, *alone.values())), strict=True):
        record = json.loads(line)
        for name, own_line in zip(alone, own, strict=True):
            reference = json.loads(own_line)
            assert record["tokens"] == reference["tokens"] and record["offsets"] == reference["offsets"]
            assert record[name] == {
                k: v for k, v in reference.items() if k not in ("text", "tokens", "offsets")
            }


def test_inline_and_a_model_given_twice_are_refused_in_one_line(cli: RunCli, pos_model, ner_model, posts):
    inline = cli("predict", "-m", pos_model, "-m", ner_model, posts, "--format-out", "inline")
    twice = cli("predict", "-m", ner_model, "-m", ner_model, posts)
    assert inline.code == twice.code == 2 and inline.out == twice.out == ""
    assert inline.err.count("\n") == twice.err.count("\n") == 1
    assert "with several --model use conll or jsonl" in inline.err
    assert f"--model {ner_model}: given twice" in twice.err


def test_nproc_needs_an_output_file(cli: RunCli, ner_model, posts):
    run = cli("predict", "-m", ner_model, posts, "--nproc", "2")
    assert run.code == 2
    assert run.err.endswith("error: --nproc needs --output FILE: the processes' parts are joined into it\n")


def test_every_rank_gets_the_backend_options(tmp_path):
    from embedcache.cli import build_parser
    from embedcache.cli.predict_ranks import _rank_arguments

    argv = ["predict", "in.txt", "-o", str(tmp_path / "out"), "--nproc", "2", "--backend", "onnx", "--int8"]
    argv += ["--onnx-dir", "lms", "-m", "a", "-m", "b", "--threads", "1"]
    rank_argv = _rank_arguments(build_parser().parse_args(argv))
    assert {"--backend=onnx", "--int8", "--onnx-dir=lms", "--model=a", "--model=b"} <= set(rank_argv)
    assert not any(arg.startswith("--nproc") for arg in rank_argv)


def rank_environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}  # this checkout in every rank


@pytest.mark.slow
def test_two_processes_write_the_bytes_one_process_writes(
    cli: RunCli, pos_model, ner_model, posts, tmp_path, monkeypatch
):
    """Two inputs and a missing one between them; two models; 2 ranks split the 43 documents 21 / 22."""
    monkeypatch.setattr(os, "environ", rank_environment())
    short = tmp_path / "short.txt"
    short.write_text("Anna lives in Rome.\n\nBob is in Paris.\n", encoding="utf-8")
    inputs = [posts, tmp_path / "missing.txt", short]
    models = ["-m", pos_model, "-m", ner_model]
    one = cli("predict", *models, *inputs, "-o", tmp_path / "one.conll")
    two = cli("predict", *models, *inputs, "-o", tmp_path / "two.conll", "--nproc", "2")
    assert one.code == two.code == 2
    assert "missing.txt: No such file or directory" in two.err and two.err.count("error:") == 1
    assert (tmp_path / "two.conll").read_bytes() == (tmp_path / "one.conll").read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "one.conll",
        "posts.txt",
        "short.txt",
        "two.conll",
    ]


@pytest.mark.slow
def test_a_killed_rank_fails_the_run_in_one_line_and_leaves_nothing(ner_model, tmp_path, data_dir):
    source = tmp_path / "posts.txt"
    source.write_text("\n".join(social_media_lines(data_dir, 2000)) + "\n", encoding="utf-8")
    output = tmp_path / "out.conll"
    command = "import sys; from embedcache.cli import main; sys.exit(main(sys.argv[1:]))"
    run = subprocess.Popen(
        [sys.executable, "-c", command, "predict", "-m", ner_model, source, "-o", output, "--nproc", "2",
         "--batch-size", "1"],
        stderr=subprocess.PIPE, text=True, env=rank_environment(),
    )  # fmt: skip
    parts: list[Path] = []
    deadline = time.monotonic() + 120
    while len(parts) < 2 and time.monotonic() < deadline:  # each rank's part names its pid
        time.sleep(0.1)
        parts = sorted(tmp_path.glob(".out.conll.tmp-*"))
    assert len(parts) == 2, "the ranks did not start tagging"
    os.kill(int(parts[-1].name.split("-")[1]), signal.SIGKILL)
    _, err = run.communicate(timeout=120)
    assert run.returncode != 0
    assert err.count("\n") == 1 and err.startswith("embedcache predict: error: --nproc 2: rank ")
    assert "was killed by signal 9" in err and f"{output} was not written" in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["posts.txt"]


def test_info_and_profile_count_the_shared_lm_once(cli: RunCli, pos_model, ner_model):
    info = json.loads(cli("info", pos_model, ner_model, "--memory", "--json").out)
    alone = [
        json.loads(cli("info", model, "--memory", "--json").out)["weights"]
        for model in (pos_model, ner_model)
    ]
    weights = info["weights"]
    assert [m["tag_type"] for m in info["models"]] == ["upos", "ner"]
    assert weights["shared_embedders"] == alone[0]["shared_embedders"] == alone[1]["shared_embedders"] > 0
    assert weights["taggers"] == {"upos": alone[0]["taggers"]["upos"], "ner": alone[1]["taggers"]["ner"]}
    assert weights["separately"] == alone[0]["total"] + alone[1]["total"]
    assert weights["total"] == weights["separately"] - weights["shared_embedders"]
    models = ["-m", pos_model, "-m", ner_model]
    profile = cli("profile", *models, "--data", "wnut17", "--sentences", "4", "--modes", "none")
    assert profile.code == 0 and "char LMs: forward 16;" in profile.out
    assert f"weights: shared embedders {weights['shared_embedders']:,} bytes" in profile.out
