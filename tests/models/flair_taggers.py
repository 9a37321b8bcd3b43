"""Flair taggers saved by Flair, for the conversion tests (models and CLI)."""

from __future__ import annotations

from pathlib import Path

from flair.datasets import ColumnCorpus
from flair.embeddings import FlairEmbeddings
from flair.models import SequenceTagger as FlairSequenceTagger

from embedcache.data import TaggedSentence, read_column_file
from tests.conftest import make_lm


def write_columns(path: Path, sentences: list[TaggedSentence]) -> None:
    blocks = ["\n".join(f"{t}\t{g}" for t, g in zip(s.tokens, s.tags, strict=True)) for s in sentences]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


def small_flair_tagger_file(tmp_path: Path, data_dir: Path, embeddings=None) -> Path:
    """A Flair tagger saved by Flair, untrained (conversion does not depend on training)."""
    sentences = list(read_column_file(data_dir / "wnut17" / "dev.conll"))[:40]
    corpus_dir = tmp_path / "small"
    corpus_dir.mkdir()
    for split in ("train", "dev", "test"):
        write_columns(corpus_dir / f"{split}.txt", sentences)
    corpus = ColumnCorpus(corpus_dir, {0: "text", 1: "ner"})
    embeddings = embeddings or FlairEmbeddings(make_lm(True, hidden_size=8))
    tagger = FlairSequenceTagger(embeddings, corpus.make_label_dictionary("ner"), "ner", hidden_size=4)
    tagger.save(tmp_path / "tagger.pt")
    return tmp_path / "tagger.pt"


class Exploit:
    """Pickles as a call of ``print("pwned")``: a file that runs code when unpickled."""

    def __reduce__(self):
        return (print, ("pwned",))
