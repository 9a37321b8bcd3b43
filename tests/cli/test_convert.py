"""``embedcache convert``: a Flair tagger file in, a model directory out; bad input exits 2 in one line."""

from __future__ import annotations

import pickle

import torch
from flair.data import Dictionary
from flair.embeddings import OneHotEmbeddings, StackedEmbeddings

from tests.cli.conftest import RunCli
from tests.conftest import make_lm
from tests.models.flair_taggers import Exploit, small_flair_tagger_file


def assert_one_line_error(run, *fragments: str) -> None:
    assert run.code == 2 and run.out == ""
    assert run.err.count("\n") == 1 and run.err.startswith("embedcache convert: error: ")
    for fragment in fragments:
        assert fragment in run.err


def test_a_flair_tagger_converts_and_predicts(cli: RunCli, tmp_path, data_dir):
    model_file = small_flair_tagger_file(tmp_path, data_dir)
    run = cli("convert", model_file, tmp_path / "model")
    assert run.code == 0, run.err
    assert f"note: {tmp_path / 'model'}: ner tagger" in run.err
    predicted = cli("predict", "--model", tmp_path / "model", "-q", stdin="Anna lives in Berlin .\n")
    token_lines = [line for line in predicted.out.splitlines() if line and not line.startswith("#")]
    assert predicted.code == 0 and [line.split("\t")[0] for line in token_lines] == [
        "Anna",
        "lives",
        "in",
        "Berlin",
        ".",
    ]


def test_a_missing_file(cli: RunCli, tmp_path):
    assert_one_line_error(
        cli("convert", tmp_path / "nope.pt", tmp_path / "out"), f"{tmp_path / 'nope.pt'}: no such"
    )


def test_a_language_model_file_is_not_a_tagger(cli: RunCli, tmp_path):
    make_lm(True, hidden_size=8).save(tmp_path / "lm.pt")
    run = cli("convert", tmp_path / "lm.pt", tmp_path / "out")
    assert_one_line_error(run, f"{tmp_path / 'lm.pt'}: not a Flair SequenceTagger")
    assert not (tmp_path / "out").exists()


def test_a_malicious_pickle_is_refused_without_running_anything(cli: RunCli, tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"__cls__": "SequenceTagger", "payload": Exploit()}, path)
    run = cli("convert", path, tmp_path / "out")
    assert_one_line_error(
        run, f"{path}: refused by the safe loader", "nothing in it was run", "--trust-pickle"
    )
    assert "pwned" not in run.out + run.err and not (tmp_path / "out").exists()


def test_trust_pickle_is_the_explicit_opt_in(cli: RunCli, tmp_path):
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(Exploit()))
    run = cli("convert", path, tmp_path / "out", "--trust-pickle")
    assert "pwned" in run.out  # the opt-in unpickles in full: the file's code ran
    assert run.code == 2 and f"{path}: not a Flair SequenceTagger" in run.err


def test_an_embedding_that_cannot_be_converted_is_named(cli: RunCli, tmp_path, data_dir):
    vocabulary = Dictionary()
    vocabulary.add_item("a")
    embeddings = StackedEmbeddings([OneHotEmbeddings(vocabulary, embedding_length=4)])
    model_file = small_flair_tagger_file(tmp_path, data_dir, embeddings)
    run = cli("convert", model_file, tmp_path / "out")
    assert_one_line_error(run, "OneHotEmbeddings has trainable parameters")
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_is_not_a_model_is_never_replaced(cli: RunCli, tmp_path, data_dir):
    model_file = small_flair_tagger_file(tmp_path, data_dir)
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"\xff\xd8")
    assert_one_line_error(
        cli("convert", model_file, folder), f"{folder}: exists and is not an embedcache model"
    )
    assert (folder / "holiday.jpg").read_bytes() == b"\xff\xd8"


def test_help_says_which_loading_is_safe(cli: RunCli):
    run = cli("convert", "--help")
    assert run.code == 0 and "allow-list" in run.out and "RUNS ANY CODE" in run.out
