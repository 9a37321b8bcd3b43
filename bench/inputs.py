"""The inputs that suites share: WNUT-17 train as token lists, and random-initialised character LMs.

Random weights are enough for speed: an LM's cost depends on its sizes, not on its values. Seeding makes the
runs reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from pathlib import Path

import torch
from flair.data import Dictionary
from flair.models import LanguageModel

from embedcache.data.conll import read_column_file

BATCH_SIZE = 32  # sentences per mini-batch, Flair's default mini_batch_size
LM_SEED = 0
CHAR_EMBEDDING_SIZE = 32  # as the test LMs in tests/conftest.py


def load_wnut17_train(data_dir: Path) -> list[list[str]]:
    """The token lists of WNUT-17 train (3,394 sentences), in file order."""
    path = data_dir / "wnut17" / "train.conll"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; pass --data DIR or set EMBEDCACHE_DATA to the data directory"
        )
    return [sentence.tokens for sentence in read_column_file(path)]


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
