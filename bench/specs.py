"""The run settings that suites (and ``notebooks/``) share: corpora, batch sizes, tagger and LM sizes.

One place for what would otherwise be copied between suites and drift: a suite imports what it uses from here
and states its own slices and repeats in its plan (``bench/suites/NAME_results.py``). The LM files themselves
(random or the bundled model's) are written by :mod:`bench.lms`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Corpora, relative to the data directory (``--data``, ``$EMBEDCACHE_DATA``).
WNUT17 = "wnut17"  # train.conll, dev.conll, test.conll: NER, six entity types
LINES_TEST = Path("ud_english_lines") / "test.conllu"  # UPOS, the bundled en-upos model's test split
SOCIAL_MEDIA_TEXT = Path("text") / "social_media_en.txt"  # raw text, one document per line

BATCH_SIZE = 32  # sentences per mini-batch, Flair's default mini_batch_size
EVAL_BATCH_SIZE = 64  # both libraries' default evaluation batch
CALL_SENTENCES = 128  # sentences per timed predict call; the harness alternates the libraries call by call
SEED = 0  # tagger initialisation and shuffling


@dataclass(frozen=True)
class TaggerSpec:
    """The BiLSTM-CRF both libraries build and train (Flair's defaults elsewhere: dropouts, re-projection)."""

    hidden_size: int = 256
    tag_scheme: str = "BIOES"
    learning_rate: float = 0.1  # SGD, gradient clipping 5, anneal-on-plateau: both libraries' defaults


@dataclass(frozen=True)
class CharLMSpec:
    """A one-direction character LM's shape (Flair's ``LanguageModel`` arguments)."""

    hidden_size: int
    nlayers: int = 1
    embedding_size: int = 100


NER_TAGGER = TaggerSpec()
# recipes/charlm.toml: the LMs under the bundled en-upos model (its dictionary: about 300 characters of
# social-media text). Suites that time these LMs use random weights of this shape (bench.lms.write_char_lms).
RECIPE_LM = CharLMSpec(hidden_size=256, nlayers=1, embedding_size=100)
LM_SEEDS = {"forward": 1, "backward": 2}  # random LMs: one seed per direction, the same in every suite
