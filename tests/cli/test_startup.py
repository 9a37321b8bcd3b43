"""Start-up: what a fresh process imports for each command. The times are measured in ``bench`` (suite
``startup``); here the modules, which decide them: Flair costs seconds, torch about two."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from gensim.models import KeyedVectors

import embedcache as ec
from embedcache.models.labels import TagDictionary
from tests.conftest import make_lm

HEAVY = ("flair", "torch", "transformers", "gensim")
# Runs the command line, then writes which of HEAVY it imported to the file named by argv[1].
PROBE = """\
import json, sys
from embedcache.cli import main
code = main(sys.argv[2:])
loaded = sorted({name.split(".")[0] for name in sys.modules} & {"flair", "torch", "transformers", "gensim"})
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "imported": loaded}, out)
"""


def imports_of(args: list[str], tmp_path: Path, stdin: str = "") -> tuple[int, list[str], str]:
    """Exit code, heavy packages imported, and stdout of ``embedcache ARGS`` in a fresh interpreter."""
    report = tmp_path / "imports.json"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    probe = json.loads(report.read_text())
    return probe["code"], probe["imported"], result.stdout


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["predict", "--help"], ["download", "--help"]])
def test_version_and_help_import_neither_torch_nor_flair(tmp_path, args):
    code, imported, out = imports_of(args, tmp_path)
    assert (code, imported) == (0, [])
    assert out.startswith("embedcache 0.1.0" if args == ["--version"] else "usage: embedcache")


def test_import_embedcache_imports_neither_torch_nor_flair():
    probe = (
        "import sys, embedcache; print(sorted({'flair', 'torch'} & set(sys.modules)), embedcache.__version__)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout == "[] 0.1.0\n"


@pytest.fixture(scope="module")
def model_with_words(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tagger with both kinds of embedder: a character LM and word vectors."""
    torch.manual_seed(0)
    words = KeyedVectors(4)
    words.add_vectors(["anna", "rome"], [[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    embedders = [ec.CharLMEmbeddings(make_lm(True, 8)), ec.WordEmbeddings(words)]
    tagger = ec.SequenceTagger(
        embedders, TagDictionary.for_labels(["PER", "LOC"], "BIO"), "ner", hidden_size=4
    )
    path = tmp_path_factory.mktemp("models") / "with-words"
    tagger.save(path)
    return path


@pytest.mark.slow
def test_predict_with_an_embedcache_model_never_imports_flair(model_with_words, tmp_path):
    code, imported, out = imports_of(
        ["predict", "--model", str(model_with_words), "-q"], tmp_path, stdin="Anna lives in Rome.\n"
    )
    assert (code, imported) == (0, ["torch"])  # no Flair (nor transformers), no gensim for plain word vectors
    assert [line.split("\t")[0] for line in out.splitlines() if "\t" in line] == [
        "Anna",
        "lives",
        "in",
        "Rome",
        ".",
    ]


@pytest.mark.slow
def test_the_bundled_default_model_predicts_without_flair(tmp_path):
    code, imported, out = imports_of(["predict", "-q", "--format-out", "jsonl"], tmp_path, stdin="I see.\n")
    assert (code, imported) == (0, ["torch"])
    assert json.loads(out)["tokens"] == ["I", "see", "."]


@pytest.mark.slow
def test_a_script_that_loads_a_model_or_a_cache_or_trains_never_imports_flair(model_with_words):
    probe = (
        "import sys, embedcache as ec\n"
        f"ec.SequenceTagger.load({str(model_with_words)!r}); ec.EmbeddingCache; ec.Trainer; ec.datasets\n"
        "print(sorted({'flair', 'transformers', 'gensim'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout == "[]\n"
