"""CLI fixtures: tiny saved taggers, and ``main()`` run in-process with stdin, stdout and stderr captured."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import embedcache as ec
from embedcache.cli import main
from embedcache.models.labels import TagDictionary
from tests.conftest import make_lm


@dataclass(frozen=True)
class Run:
    """What one ``main([...])`` call gave."""

    code: int
    out: str
    err: str


RunCli = Callable[..., Run]


def save_tagger(path: Path, tags: TagDictionary, tag_type: str) -> Path:
    """A tagger on a hidden-16 random LM whose large random emission weights make the tags vary."""
    torch.manual_seed(0)
    tagger = ec.SequenceTagger(ec.CharLMEmbeddings(make_lm(True, 16, seed=3)), tags, tag_type, hidden_size=8,
                               use_crf=False)  # fmt: skip
    torch.nn.init.normal_(tagger.emission.weight, std=30.0)
    tagger.model_card = {"name": f"tiny-{tag_type}", "license": "CC0"}
    tagger.save(path)
    return path


@pytest.fixture(scope="session")
def ner_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tags = TagDictionary.for_labels(["LOC", "ORG", "PER"], "BIOES")
    return save_tagger(tmp_path_factory.mktemp("models") / "ner", tags, "ner")


@pytest.fixture(scope="session")
def pos_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tags = TagDictionary(["ADJ", "DET", "NOUN", "PUNCT", "VERB"], "plain")
    return save_tagger(tmp_path_factory.mktemp("models") / "pos", tags, "upos")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> RunCli:
    """``cli("predict", "--model", path, stdin=b"...")``: run the command line in this process."""

    def run(*args: str | Path, stdin: bytes | str = b"") -> Run:
        data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
        capsys.readouterr()
        code = main([str(arg) for arg in args])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def conll_sentences(text: str) -> list[list[tuple[str, str]]]:
    """``(token, tag)`` pairs of each sentence of CoNLL output (its ``# ...`` comment lines left out)."""
    lines = [line for line in text.split("\n") if not line.startswith("# ")]
    blocks = [block for block in "\n".join(lines).split("\n\n") if block.strip()]
    return [[tuple(line.split("\t")) for line in block.strip("\n").split("\n")] for block in blocks]
