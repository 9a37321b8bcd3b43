"""embedcache predict --backend onnx [--int8] [--onnx-dir]: torch's output, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import sys

import pytest

from tests.cli.conftest import RunCli

TEXT = "Anna lives in Rome .\nApple is looking at buying a U.K. startup for $ 1 billion .\n"


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDCACHE_ONNX_CACHE", str(tmp_path / "onnx-cache"))


def test_onnx_fp32_writes_what_torch_writes(cli: RunCli, ner_model, data_dir):
    pytest.importorskip("onnxruntime")
    test = data_dir / "wnut17" / "test.conll"
    torch_run = cli("predict", "--model", ner_model, "--device", "cpu", "--quiet", test)
    onnx_run = cli("predict", "--model", ner_model, "--device", "cpu", "--quiet", "--backend", "onnx", test)
    assert (onnx_run.code, onnx_run.err) == (0, "") and torch_run.code == 0
    assert onnx_run.out == torch_run.out


def test_int8_without_the_onnx_backend_is_refused(cli: RunCli, ner_model):
    run = cli("predict", "--model", ner_model, "--int8", stdin=TEXT)
    assert (run.code, run.out) == (2, "")
    assert run.err == "embedcache predict: error: --int8 runs the LMs on ONNX Runtime; add --backend onnx\n"


def test_without_onnx_runtime_one_line_says_how_to_install_it(cli: RunCli, ner_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    run = cli("predict", "--model", ner_model, "--device", "cpu", "--backend", "onnx", stdin=TEXT)
    assert (run.code, run.out) == (2, "")
    assert run.err == (
        "embedcache predict: error: ONNX Runtime is not installed; install it with: "
        "pip install 'embedcache[onnx]'\n"
    )


def test_an_onnx_dir_without_the_models_export_is_refused_naming_the_file(cli: RunCli, ner_model, tmp_path):
    pytest.importorskip("onnxruntime")
    args = ["predict", "--model", ner_model, "--device", "cpu", "--backend", "onnx", "--onnx-dir", tmp_path]
    run = cli(*args, stdin=TEXT)
    assert (run.code, run.out) == (2, "")
    assert run.err.startswith(f"embedcache predict: error: {tmp_path}/") and run.err.count("\n") == 1
    assert "-fp32.onnx: no such file; export the model again with 'embedcache export" in run.err


def test_export_then_predict_from_the_exported_dir_writes_the_int8_output(cli: RunCli, ner_model, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "lms"
    exported = cli("export", ner_model, out, "--onnx", "--int8")
    notes = exported.err.splitlines()
    assert exported.code == 0 and [n.split(f" {out}/")[0] for n in notes] == [
        "note: LM:",
        "note: tagger head:",
    ]
    assert sorted(p.suffix for p in out.iterdir()) == [
        ".json",
        ".json",
        ".onnx",
        ".onnx",
    ]  # one char LM, the head
    options = ["predict", "--model", ner_model, "--device", "cpu", "--quiet", "--backend", "onnx", "--int8"]
    from_dir = cli(*options, "--onnx-dir", out, stdin=TEXT)
    from_cache = cli(*options, stdin=TEXT)
    assert (from_dir.code, from_dir.err) == (0, "") and from_dir.out == from_cache.out
    assert sorted(p.name for p in (tmp_path / "onnx-cache").iterdir()) == sorted(
        p.name for p in out.iterdir()
    )


def test_a_damaged_head_export_in_an_onnx_dir_is_refused_naming_it(cli: RunCli, ner_model, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "graphs"
    assert cli("export", ner_model, out, "--onnx").code == 0
    (head,) = [p.with_suffix(".onnx") for p in out.glob("*.json") if "tagger-head" in p.read_text()]
    data = bytearray(head.read_bytes())
    data[len(data) // 2] ^= 0xFF
    head.write_bytes(bytes(data))
    run = cli(
        "predict", "--model", ner_model, "--device", "cpu", "--backend", "onnx", "--onnx-dir", out, stdin=TEXT
    )
    assert (run.code, run.out) == (2, "")
    assert run.err == (
        f"embedcache predict: error: {head}: damaged (its sha256 differs from the one recorded at export); "
        "export the model again with 'embedcache export MODEL DIR --onnx'\n"
    )


def test_auto_runs_onnx_int8_on_the_cpu_and_says_nothing(ner_model, caplog):
    pytest.importorskip("onnxruntime")
    import torch

    from embedcache.cli.common import load_model

    tagger = load_model(str(ner_model), torch.device("cpu"), "auto")
    assert tagger.head_runner is not None and tagger.head_runner.name == "onnx-int8"
    assert {e.runner.name for e in tagger.embeddings.embedders} == {"onnx-int8"}
    assert caplog.records == []


def evaluated_backend(cli: RunCli, model, gold, *options: str) -> str:
    run = cli("evaluate", model, gold, "--json", "--quiet", *options)
    assert (run.code, run.err) == (0, "")
    return json.loads(run.out)["backend"]


@pytest.fixture
def gold(data_dir, tmp_path):
    path = tmp_path / "gold.conll"
    path.write_text("\n\n".join((data_dir / "wnut17" / "dev.conll").read_text().split("\n\n")[:20]) + "\n\n")
    return path


def test_auto_is_the_command_lines_default(cli: RunCli, ner_model, gold, monkeypatch):
    pytest.importorskip("onnxruntime")
    assert evaluated_backend(cli, ner_model, gold) == "torch"  # the tests' $EMBEDCACHE_BACKEND
    monkeypatch.delenv("EMBEDCACHE_BACKEND")
    assert evaluated_backend(cli, ner_model, gold) == "onnx-int8"


def test_auto_without_onnx_runtime_runs_torch_and_says_nothing(cli: RunCli, ner_model, gold, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert evaluated_backend(cli, ner_model, gold, "--backend", "auto") == "torch"


def test_auto_without_the_onnx_package_runs_torch_with_a_warning(cli: RunCli, ner_model, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setitem(sys.modules, "onnx", None)  # ONNX Runtime runs graphs; exporting them needs onnx
    run = cli("predict", "--model", ner_model, "--device", "cpu", "--backend", "auto", stdin=TEXT)
    assert run.code == 0 and run.out
    assert run.err.startswith(
        "WARNING embedcache.models.backends: running the model in torch, not ONNX Runtime int8: exporting "
        "needs the onnx package, which is not installed; install it with: pip install 'embedcache[onnx]'\n"
    )


def test_auto_runs_torch_with_a_warning_when_the_cache_cannot_be_written(
    cli: RunCli, ner_model, tmp_path, monkeypatch
):
    pytest.importorskip("onnxruntime")
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("EMBEDCACHE_ONNX_CACHE", str(tmp_path / "a-file" / "onnx"))
    options = ["predict", "--model", ner_model, "--device", "cpu"]
    expected = cli(*options, "--backend", "torch", "--quiet", stdin=TEXT)
    run = cli(*options, "--backend", "auto", stdin=TEXT)
    assert run.code == 0 and run.out == expected.out
    assert (
        run.err.startswith(
            "WARNING embedcache.models.backends: running the model in torch, not ONNX Runtime int8: "
        )
        and str(tmp_path / "a-file") in run.err
    )


def test_an_unknown_backend_in_the_environment_is_refused_in_one_line(cli: RunCli, ner_model, monkeypatch):
    monkeypatch.setenv("EMBEDCACHE_BACKEND", "tensorrt")
    run = cli("predict", "--model", ner_model, "--device", "cpu", stdin=TEXT)
    assert (run.code, run.out) == (2, "")
    assert run.err == (
        "embedcache predict: error: EMBEDCACHE_BACKEND=tensorrt: not a backend; "
        "set it to one of auto, torch, onnx\n"
    )


def test_evaluate_says_which_backend_scored(cli: RunCli, ner_model, gold):
    pytest.importorskip("onnxruntime")
    assert evaluated_backend(cli, ner_model, gold, "--backend", "onnx") == "onnx-fp32"
    assert evaluated_backend(cli, ner_model, gold, "--backend", "onnx", "--int8") == "onnx-int8"
    assert cli("evaluate", ner_model, gold, "--quiet").out.endswith("\nbackend: torch\n")


def test_an_int8_export_missing_from_an_onnx_dir_names_the_int8_export_command(
    cli: RunCli, ner_model, tmp_path
):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "graphs"
    assert cli("export", ner_model, out, "--onnx").code == 0  # fp32 only
    run = cli("predict", "--model", ner_model, "--backend", "onnx", "--int8", "--onnx-dir", out, stdin=TEXT)
    assert run.code == 2 and run.err.endswith(
        "-int8.onnx: no such file; export the model again with 'embedcache export MODEL DIR --onnx --int8'\n"
    )


def test_an_onnx_dir_with_the_torch_backend_is_refused(cli: RunCli, ner_model, tmp_path):
    run = cli("predict", "--model", ner_model, "--backend", "torch", "--onnx-dir", tmp_path, stdin=TEXT)
    assert (run.code, run.out) == (2, "")
    assert run.err == (
        "embedcache predict: error: --onnx-dir holds graphs for ONNX Runtime; add --backend onnx (or auto), "
        "not torch\n"
    )


def test_the_command_lines_backend_choices_are_the_backends():
    from embedcache.cli.common import BACKEND_CHOICES
    from embedcache.models.backends import BACKENDS

    assert BACKEND_CHOICES == BACKENDS  # two copies, so that --help need not import torch


def test_with_nproc_each_ranks_warning_is_reported_once():
    from embedcache.cli.predict_ranks import _reported_lines

    fallback = "WARNING embedcache.models.backends: running the model in torch, not ONNX Runtime int8: x"
    output = f"{fallback}\n[rank 1 chatter]\n{fallback}\nnote: tagged 3 sentences\n"
    assert _reported_lines(output) == [fallback, "note: tagged 3 sentences"]
