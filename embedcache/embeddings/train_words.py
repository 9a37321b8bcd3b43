"""Training word2vec vectors on raw text, for the taggers' :class:`~embedcache.embeddings.WordEmbeddings`.

Lines are tokenised as Flair tokenises sentences (segtok) and lower-cased; :class:`WordEmbeddings` looks a
word up as is and then lower-cased, so every casing finds its vector. The vectors are written in word2vec's
binary format (no pickle), atomically.

Example:
    python -m embedcache.embeddings.train_words ../shared/data/text/social_media_en.txt out/words/w2v.bin
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from gensim.models import KeyedVectors, Word2Vec

from embedcache.data.tokenize import segtok_words

log = logging.getLogger(__name__)


def tokenized_lines(text_path: str | Path, max_lines: int | None = None) -> list[list[str]]:
    """The lower-cased segtok tokens of the first ``max_lines`` lines with tokens of a UTF-8 file."""
    sentences: list[list[str]] = []
    with Path(text_path).open(encoding="utf-8") as text:
        for line in text:
            if max_lines is not None and len(sentences) >= max_lines:
                break
            words = [word.lower() for word in segtok_words(line.strip())]
            if words:
                sentences.append(words)
    return sentences


def train_word_vectors(
    text_path: str | Path,
    out_path: str | Path,
    vector_size: int = 100,
    min_count: int = 3,
    epochs: int = 5,
    max_lines: int | None = None,
    seed: int = 0,
    workers: int = 1,
    *,
    window: int = 5,
    skip_gram: bool = True,
) -> KeyedVectors:
    """Train word2vec on a text file and write the vectors to ``out_path`` in word2vec binary format.

    With ``workers=1`` the vectors are the same on every run for the same ``seed``.

    Args:
        text_path: UTF-8 text, one document per line.
        out_path: the ``.bin`` file to write; its folder is created.
        vector_size, min_count, epochs, window: as in ``gensim.models.Word2Vec``.
        max_lines: read at most this many lines.
        skip_gram: skip-gram (better for rare words on small corpora) rather than CBOW.

    Returns:
        The trained vectors.
    """
    sentences = tokenized_lines(text_path, max_lines)
    if not sentences:
        raise ValueError(f"{text_path}: no tokens to train word vectors on")
    model = Word2Vec(
        sentences,
        vector_size=vector_size,
        window=window,
        min_count=min_count,
        sg=int(skip_gram),
        epochs=epochs,
        seed=seed,
        workers=workers,
    )
    vectors = model.wv
    log.info(
        "%d lines, %d tokens: %d words with at least %d occurrences, %d dimensions",
        len(sentences),
        sum(len(s) for s in sentences),
        len(vectors),
        min_count,
        vector_size,
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Staged beside the target, so the rename is atomic and a cut run never leaves a half-written file.
    staged = out_path.with_name(f".{out_path.name}.{os.getpid()}.partial")
    try:
        vectors.save_word2vec_format(str(staged), binary=True)
        os.replace(staged, out_path)
    finally:
        staged.unlink(missing_ok=True)
    return vectors


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train word2vec vectors (word2vec binary format).")
    parser.add_argument("text_path", type=Path)
    parser.add_argument("out_path", type=Path)
    parser.add_argument("--vector-size", type=int, default=100)
    parser.add_argument("--min-count", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max-lines", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    train_word_vectors(
        args.text_path,
        args.out_path,
        vector_size=args.vector_size,
        min_count=args.min_count,
        epochs=args.epochs,
        max_lines=args.max_lines,
        seed=args.seed,
        workers=args.workers,
    )


if __name__ == "__main__":
    main()
