"""Bad input exits with code 2 and one line naming the file (and line); internal errors with code 1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import embedcache.inference.predict
from embedcache.cli import main
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
    if kind == "no line break (/dev/zero)":
        return Path("/dev/zero"), "/dev/zero:1: line longer than 1,048,576 bytes"
    if kind == "carriage returns only":
        path = folder / "mac.txt"
        path.write_bytes(b"Anna lives in Rome .\rHi .\r")
        return path, f"{path}:1: the lines end in a carriage return (\\r) alone"
    path = folder / "short.conll"
    path.write_text("Anna\tB-PER\nlives\tO\n\nin\n", encoding="utf-8")
    return path, f"{path}:4: expected at least 2 columns, found 1"


@pytest.mark.parametrize(
    "kind",
    ["missing file", "directory", "latin-1 bytes", "latin-1 in a CoNLL file", "wrong number of columns",
     "no line break (/dev/zero)", "carriage returns only"],
)  # fmt: skip
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

    monkeypatch.setattr(
        embedcache.inference.predict, "predict_many", broken
    )  # the command imports it when it runs
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
    real = embedcache.inference.predict.tokenize_document
    message = "token 'BOOM' not found in the text"

    def fussy(text: str, source: str = ""):
        if "BOOM" in text:
            raise ValueError(message)
        return real(text, source)

    monkeypatch.setattr(embedcache.inference.predict, "tokenize_document", fussy)
    monkeypatch.setattr(embedcache.cli.predict, "tokenize_document", fussy)
    path = tmp_path / "posts.txt"
    path.write_text("fine\nBOOM here\n", encoding="utf-8")
    run = cli("predict", "--model", ner_model, path)
    assert (run.code, run.out) == (2, "")
    assert run.err == f"embedcache predict: error: {path}:2: cannot tokenise this line: {message}\n"


def test_a_closed_stdin_fails_alone_and_the_other_inputs_are_tagged(ner_model, tmp_path, monkeypatch, capsys):
    other = tmp_path / "other.txt"
    other.write_text("Anna lives in Rome .\n", encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", None)  # what Python makes of a closed descriptor 0 (`<&-`)
    code = main(["predict", "--model", str(ner_model), "-", str(other)])
    out, err = capsys.readouterr()
    assert code == 2
    assert err == (
        "embedcache predict: error: -: stdin is closed; "
        "pipe the input in or pass a file name instead of '-'\n"
    )
    tokens = [line.split("\t")[0] for line in out.splitlines() if not line.startswith("# ")]  # no comments
    assert tokens == ["Anna", "lives", "in", "Rome", ".", ""]


@pytest.mark.parametrize("spelling", ["same path", "relative path", "symlink", "hard link"])
def test_an_output_that_is_an_input_is_refused_before_anything_is_written(
    cli: RunCli, ner_model, tmp_path, monkeypatch, spelling
):
    first, source = tmp_path / "first.txt", tmp_path / "posts.txt"
    first.write_text("Rome .\n", encoding="utf-8")
    source.write_text("Anna lives in Rome .\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    output = {
        "same path": source,
        "relative path": Path("sub/../posts.txt"),
        "symlink": tmp_path / "link.txt",
        "hard link": tmp_path / "hard.txt",
    }[spelling]
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.txt").symlink_to(source)
    os.link(source, tmp_path / "hard.txt")
    run = cli("predict", "--model", ner_model, first, "posts.txt", "-o", output)
    assert (run.code, run.out) == (2, "")
    assert run.err == (
        f"embedcache predict: error: --output {output}: is the input posts.txt, which would be replaced "
        "by its tags; write to another file\n"
    )
    assert source.read_text(encoding="utf-8") == "Anna lives in Rome .\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.txt", "hard.txt", "link.txt", "posts.txt",
                                                          "sub"]  # fmt: skip


def test_evaluate_refuses_to_write_its_scores_over_the_gold_data(cli: RunCli, ner_model, tmp_path):
    gold = tmp_path / "gold.conll"
    gold.write_text("Anna\tS-PER\n\n", encoding="utf-8")
    run = cli("evaluate", ner_model, gold, "-o", gold)
    assert (run.code, run.out) == (2, "")
    assert run.err.count("\n") == 1 and f"--output {gold}: is the input {gold}" in run.err
    assert gold.read_text(encoding="utf-8") == "Anna\tS-PER\n\n"


@pytest.mark.parametrize("option", ["--chunk-size", "--batch-size", "--threads"])
def test_an_absurdly_large_count_is_a_usage_error(cli: RunCli, ner_model, option):
    run = cli("predict", "--model", ner_model, option, "99999999999999999999")
    assert (run.code, run.out) == (2, "")
    assert run.err.count("\n") == 1
    assert "expected a positive integer up to 2,147,483,647, got 99999999999999999999" in run.err


@pytest.mark.parametrize("target", ["--output", "stdout"])
def test_a_full_disk_is_bad_input_naming_the_output_and_leaves_nothing_behind(
    cli: RunCli, ner_model, tmp_path, outputs_on_a_full_disk, target
):
    source, output = tmp_path / "posts.txt", tmp_path / "out.conll"
    source.write_text("Anna lives in Rome .\n" * 50, encoding="utf-8")
    output.write_text("old\n", encoding="utf-8")
    run = cli("predict", "--model", ner_model, source, *(["-o", output] if target == "--output" else []))
    assert (run.code, run.out) == (2, "")
    if target == "--output":
        expected = f"{output}: No space left on device (nothing was written to it)"
    else:
        expected = f"{tempfile.gettempdir()}: No space left on device (output is spooled here first"
    assert run.err.count("\n") == 1 and run.err.startswith(f"embedcache predict: error: {expected}")
    assert output.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.conll", "posts.txt"]


UNSHARE = shutil.which("unshare")
FULL_TMPFS_RUN = """
mount -t tmpfs -o size=64k tmpfs "$1" || exit 99
printf 'old\\n' > "$1/out.conll"
"$2" -c 'import sys; from embedcache.cli import main; sys.exit(main(sys.argv[1:]))' \\
    predict --model "$3" "$4" -o "$1/out.conll" -q
echo "exit $?"; ls -A "$1"; cat "$1/out.conll"
"""


@pytest.mark.slow
@pytest.mark.skipif(UNSHARE is None, reason="needs unshare (util-linux)")
def test_a_real_full_tmpfs_keeps_the_old_output_and_leaves_no_temporary(ner_model, tmp_path):
    source, mount_point = tmp_path / "posts.txt", tmp_path / "small-disk"
    source.write_text("Anna lives in Rome .\n" * 5000, encoding="utf-8")  # ~150 kB of tags: over 64 kB
    mount_point.mkdir()
    result = subprocess.run(
        [UNSHARE, "-rm", "sh", "-c", FULL_TMPFS_RUN, "sh", mount_point, sys.executable, ner_model, source],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300,
    )  # fmt: skip
    if result.stdout == "" and result.returncode in (1, 99):
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {result.stderr.strip()}")
    assert result.stdout == "exit 2\nout.conll\nold\n"
    assert result.stderr == (
        f"embedcache predict: error: {mount_point / 'out.conll'}: No space left on device "
        "(nothing was written to it)\n"
    )


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize(
    ("card", "problem"),
    [(b'{"name": ', "not valid JSON (Expecting value: line 1 column 10 (char 9))"),
     ('{"name": "caf\u00e9"}'.encode("latin-1"), "not UTF-8 (byte 14)"),
     (b"[1, 2]", "a model card is a JSON object, not list")],
)  # fmt: skip
def test_a_broken_model_card_is_bad_input_saying_what_to_do(
    cli: RunCli, ner_model, tmp_path, command, card, problem
):
    model, gold = tmp_path / "model", tmp_path / "gold.conll"
    shutil.copytree(ner_model, model)
    (model / "model_card.json").write_bytes(card)
    gold.write_text("Anna\tS-PER\n\n", encoding="utf-8")
    run = cli(command, *(["--model", model, gold] if command == "predict" else [model, gold]))
    assert (run.code, run.out) == (2, "")
    assert run.err == (
        f"embedcache {command}: error: {model / 'model_card.json'}: {problem}; fix or delete it "
        "(it only describes the model; the weights do not need it)\n"
    )
