"""Training word2vec or fastText vectors on raw text, for :class:`~embedcache.embeddings.WordVectors`.

Lines are tokenised as Flair tokenises sentences (segtok) and lower-cased; :class:`WordVectors` looks a
word up as is and then lower-cased, so every casing finds its vector. CoNLL-U files contribute their gold
tokens. word2vec vectors are written in word2vec's binary format, fastText models (whose character n-gram
vectors give every unseen word a vector) in Facebook's ``.bin`` format; neither pickles, both atomically.

Example:
    python -m embedcache.embeddings.train_words ../shared/data/text/social_media_en.txt out/words/w2v.bin
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from gensim.models import FastText, KeyedVectors, Word2Vec
from gensim.models.fasttext import save_facebook_model

from embedcache.atomic import write_atomic
from embedcache.data.tokenize import segtok_words

log = logging.getLogger(__name__)


def tokenized_lines(text_path: str | Path, max_lines: int | None = None) -> list[list[str]]:
    """The lower-cased segtok tokens of the first ``max_lines`` lines with tokens of a UTF-8 file.

    A ``.conllu`` file gives its sentences' gold tokens instead (multi-word token ranges left out).
    """
    if Path(text_path).suffix == ".conllu":
        return _conllu_tokens(Path(text_path), max_lines)
    sentences: list[list[str]] = []
    with Path(text_path).open(encoding="utf-8") as text:
        for line in text:
            if max_lines is not None and len(sentences) >= max_lines:
                break
            words = [word.lower() for word in segtok_words(line.strip())]
            if words:
                sentences.append(words)
    return sentences


def _conllu_tokens(path: Path, max_lines: int | None) -> list[list[str]]:
    sentences: list[list[str]] = [[]]
    with path.open(encoding="utf-8") as conllu:
        for line in conllu:
            fields = line.split("\t")
            if len(fields) == 10 and fields[0].isdigit():
                sentences[-1].append(fields[1].lower())
            elif not line.strip() and sentences[-1]:
                if max_lines is not None and len(sentences) >= max_lines:
                    break
                sentences.append([])
    return [words for words in sentences if words]


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
    extra_texts: Sequence[str | Path] = (),
    subwords: tuple[int, int, int] | None = None,
) -> KeyedVectors:
    """Train word2vec (or fastText) on text files and write the vectors to ``out_path``.

    With ``workers=1`` the vectors are the same on every run for the same ``seed``.

    Args:
        text_path: UTF-8 text, one document per line.
        out_path: the ``.bin`` file to write; its folder is created.
        vector_size, min_count, epochs, window: as in ``gensim.models.Word2Vec``.
        max_lines: read at most this many lines.
        skip_gram: skip-gram (better for rare words on small corpora) rather than CBOW.
        extra_texts: more text files (all of each), e.g. the training split of a treebank (``.conllu``).
        subwords: ``(min_n, max_n, buckets)``: train fastText with character n-grams of ``min_n`` to
            ``max_n`` hashed into ``buckets`` vectors, and write Facebook's ``.bin`` (the n-gram table is
            ``buckets × vector_size`` floats, the bulk of the file); ``None``: word2vec binary.

    Returns:
        The trained vectors.
    """
    sentences = tokenized_lines(text_path, max_lines)
    for extra in extra_texts:
        sentences += tokenized_lines(extra)
    if not sentences:
        raise ValueError(f"{text_path}: no tokens to train word vectors on")
    settings = dict(vector_size=vector_size, window=window, min_count=min_count, sg=int(skip_gram),
                    epochs=epochs, seed=seed, workers=workers)  # fmt: skip
    if subwords is None:
        model: Word2Vec = Word2Vec(sentences, **settings)
    else:
        min_n, max_n, buckets = subwords
        model = FastText(sentences, min_n=min_n, max_n=max_n, bucket=buckets, **settings)
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
    if subwords is None:
        write_atomic(out_path, lambda staged: vectors.save_word2vec_format(str(staged), binary=True))
    else:
        write_atomic(out_path, lambda staged: save_facebook_model(model, str(staged)))
    return vectors


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train word2vec or fastText vectors.")
    parser.add_argument("text_path", type=Path)
    parser.add_argument("out_path", type=Path)
    parser.add_argument("--extra-text", type=Path, action="append", default=[], help="more text or .conllu")
    parser.add_argument(
        "--subwords", metavar="MIN_N,MAX_N,BUCKETS", help="train fastText, e.g. 3,6,50000 (default: word2vec)"
    )
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
        extra_texts=args.extra_text,
        subwords=None if args.subwords is None else tuple(int(n) for n in args.subwords.split(",")),
    )


if __name__ == "__main__":
    main()
