"""Bad input exits with code 2 and one line naming the file (and line); internal errors with code 1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import embedcache.models.predict
from tests.cli.conftest import RunCli


def bad_input(folder: Path, kind: str) -> tuple[Path, str]:
    """A bad input of ``kind`` and the text its error line must contain."""
    if kind == "missing file":
        return folder / "missing.txt", f"{folder / 'missing.txt'}: No such file or directory"
    if kind == "directory":
        return folder, f"{folder}: Is a directory"
    if kind == "latin-1 bytes":
        path = folder / "latin.txt"
        path.write_bytes("fine\ncafé crème\n".encode("latin-1"))
        return path, f"{path}:2: not UTF-8 (byte 4 of the line"
    if kind == "latin-1 in a CoNLL file":
        path = folder / "latin.conll"
        path.write_bytes("a\tO\n\nb\tO\ncaf\u00e9\tO\n".encode("latin-1"))
        return path, f"{path}:4: not UTF-8 (byte 4 of the line"
    path = folder / "short.conll"
    path.write_text("Anna\tB-PER\nlives\tO\n\nin\n", encoding="utf-8")
    return path, f"{path}:4: expected at least 2 columns, found 1"


@pytest.mark.parametrize(
    "kind",
    ["missing file", "directory", "latin-1 bytes", "latin-1 in a CoNLL file", "wrong number of columns"],
)
def test_a_bad_input_gives_code_2_and_one_line_naming_file_and_line(cli: RunCli, ner_model, tmp_path, kind):
    path, message = bad_input(tmp_path, kind)
    run = cli("predict", "--model", ner_model, path)
    assert (run.code, run.out) == (2, "")
    assert run.err.count("\n") == 1 and run.err.startswith(f"embedcache predict: error: {message}")


def test_an_empty_input_gives_empty_output_and_a_note(cli: RunCli, ner_model, tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    run = cli("predict", "--model", ner_model, path)
    assert (run.code, run.out, run.err) == (0, "", f"note: {path}: empty input, nothing to tag\n")
    assert cli("predict", "--model", ner_model, path, "--quiet").err == ""


def test_an_unknown_model_name_lists_the_bundled_models(cli: RunCli, tmp_path):
    run = cli("predict", "--model", "no-such-model")
    assert (run.code, run.out) == (2, "")
    assert run.err.count("\n") == 1
    assert "no-such-model: no such model directory, and not a bundled model name (bundled: " in run.err


@pytest.mark.parametrize("damage", ["invalid config.json", "missing weights"])
def test_a_corrupt_model_gives_code_2_and_names_the_file(cli: RunCli, ner_model, tmp_path, damage):
    model = tmp_path / "model"
    shutil.copytree(ner_model, model)
    if damage == "invalid config.json":
        (model / "config.json").write_text("{", encoding="utf-8")
    else:
        (model / "tagger.safetensors").unlink()
    run = cli("predict", "--model", model, stdin="Anna lives in Rome.\n")
    assert (run.code, run.out) == (2, "")
    assert run.err.count("\n") == 1 and str(model) in run.err


def test_bad_options_give_code_2_and_one_line(cli: RunCli, ner_model, tmp_path):
    assert cli("predict", "--model", ner_model, "--batch-size", "0").code == 2
    run = cli("predict", "--model", ner_model, "--output", tmp_path / "no" / "such" / "out.conll")
    assert (run.code, run.err.count("\n")) == (2, 1) and "does not exist" in run.err
    run = cli("predict", "--format-out", "xml")
    assert (run.code, run.err.count("\n")) == (2, 1) and "invalid choice: 'xml'" in run.err


def test_an_internal_error_gives_code_1_and_a_hint_and_debug_shows_the_traceback(
    cli: RunCli, ner_model, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke")

    monkeypatch.setattr(embedcache.models.predict, "predict", broken)  # the command imports it when it runs
    run = cli("predict", "--model", ner_model, stdin="Anna lives in Rome.\n")
    assert run.code == 1
    assert run.err == (
        "embedcache predict: internal error: RuntimeError: something inside broke "
        "(rerun with --debug for the traceback)\n"
    )
    with pytest.raises(RuntimeError, match="something inside broke"):
        cli("predict", "--model", ner_model, "--debug", stdin="Anna lives in Rome.\n")


def test_the_installed_script_tags_stdin_and_reports_a_bad_input_without_traceback(ner_model, tmp_path):
    script = shutil.which(
        "embedcache", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    )
    assert script is not None, "the embedcache console script is not installed (pip install -e .)"
    missing = tmp_path / "missing.txt"
    result = subprocess.run(
        [script, "predict", "--model", str(ner_model), "-", str(missing)],
        input="Apple is looking at buying a U.K. startup for $1 billion .\n",
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # a shared machine: threads only spin
        timeout=120,
    )
    assert result.returncode == 2
    tokens = [line.split("\t")[0] for line in result.stdout.splitlines() if not line.startswith("# ")]
    assert tokens[:4] == ["Apple", "is", "looking", "at"]
    assert result.stderr == f"embedcache predict: error: {missing}: No such file or directory\n"


def test_a_line_the_tokeniser_cannot_place_is_named_with_its_line(
    cli: RunCli, ner_model, tmp_path, monkeypatch
):
    real = embedcache.models.predict.tokenize_document
    message = "token 'BOOM' not found in the text"

    def fussy(text: str, source: str = ""):
        if "BOOM" in text:
            raise ValueError(message)
        return real(text, source)

    monkeypatch.setattr(embedcache.models.predict, "tokenize_document", fussy)
    monkeypatch.setattr(embedcache.cli.predict, "tokenize_document", fussy)
    path = tmp_path / "posts.txt"
    path.write_text("fine\nBOOM here\n", encoding="utf-8")
    run = cli("predict", "--model", ner_model, path)
    assert (run.code, run.out) == (2, "")
    assert run.err == f"embedcache predict: error: {path}:2: cannot tokenise this line: {message}\n"
