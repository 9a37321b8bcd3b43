"""The inputs that suites share: WNUT-17 as token lists and entity types, predict calls in both libraries'
forms, and random-initialised character LMs of any size.

Random weights are enough for speed: an LM's cost depends on its sizes, not on its values. Seeding makes the
runs reproducible. The LMs of the recipe's size, random or trained, are written by :mod:`bench.lms`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import torch
from flair.data import Dictionary, Sentence
from flair.models import LanguageModel

import embedcache as ec
from bench.specs import WNUT17
from embedcache.data.conll import read_column_file

LM_SEED = 0
CHAR_EMBEDDING_SIZE = 32  # as the test LMs in tests/conftest.py


def load_wnut17_train(data_dir: Path) -> list[list[str]]:
    """The token lists of WNUT-17 train (3,394 sentences), in file order."""
    path = data_dir / WNUT17 / "train.conll"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; pass --data DIR or set EMBEDCACHE_DATA to the data directory"
        )
    return [sentence.tokens for sentence in read_column_file(path)]


def entity_types(sentences: Sequence[ec.TaggedSentence]) -> list[str]:
    """The span labels of BIO-tagged sentences (``B-person`` → ``person``), sorted."""
    return sorted({tag[2:] for s in sentences for tag in s.tags or [] if tag != "O"})


@dataclass(frozen=True)
class Call:
    """One predict call's input, in both libraries' forms."""

    sentences: list[ec.TaggedSentence]
    flair_sentences: list[Sentence]  # rebuilt before every Flair call: predict adds labels to them

    def rebuild_flair_sentences(self) -> None:
        self.flair_sentences[:] = [Sentence(s.tokens) for s in self.sentences]


def predict_calls(sentences: Sequence[ec.TaggedSentence], call_sentences: int) -> list[Call]:
    """``sentences`` in calls of ``call_sentences``, Flair's forms built."""
    calls = [
        Call(list(sentences[i : i + call_sentences]), []) for i in range(0, len(sentences), call_sentences)
    ]
    for call in calls:
        call.rebuild_flair_sentences()
    return calls


def character_dictionary(corpus: Sequence[Sequence[str]]) -> Dictionary:
    """Every character of the corpus plus the LM's markers, sorted so ids (and so the LM) are reproducible."""
    dictionary = Dictionary()  # <unk> at id 0, as in Flair's LMs
    for character in sorted(set(chain.from_iterable(chain.from_iterable(corpus))) | {" ", "\n"}):
        dictionary.add_item(character)
    return dictionary


def random_char_lm(
    dictionary: Dictionary, hidden_size: int, device: torch.device, is_forward: bool = True
) -> LanguageModel:
    """A one-layer Flair ``LanguageModel`` seeded with :data:`LM_SEED`, in eval mode (dropout off)."""
    torch.manual_seed(LM_SEED)
    lm = LanguageModel(dictionary, is_forward, hidden_size, 1, CHAR_EMBEDDING_SIZE)
    lm.to(device)  # Flair's LanguageModel.to returns None
    return lm.eval()
