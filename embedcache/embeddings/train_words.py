"""Training word2vec or fastText vectors on raw text, for :class:`~embedcache.embeddings.WordVectors`.

Lines are tokenised as Flair tokenises sentences (segtok) and lower-cased; :class:`WordVectors` looks a
word up as is and then lower-cased, so every casing finds its vector. CoNLL-U files contribute their gold
tokens. word2vec vectors are written in word2vec's binary format, fastText models (whose character n-gram
vectors give every unseen word a vector) in Facebook's ``.bin`` format; neither pickles, both atomically.

The settings are the fields of :class:`WordVectorConfig`: :func:`train_word_vectors` takes them as keywords
(or a whole config), and the command line has one option per field.

Example:
    python -m embedcache.embeddings.train_words ../shared/data/text/social_media_en.txt out/words/w2v.bin
    python -m embedcache.embeddings.train_words posts.txt out/ft.bin --subwords 3,6,50000 --epochs 10
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gensim.models import FastText, KeyedVectors, Word2Vec
from gensim.models.fasttext import save_facebook_model

from embedcache.atomic import write_atomic
from embedcache.config_fields import (
    RecipeError,
    Table,
    checked_value,
    field_defaults,
    field_types,
    parse_value,
    takes_list,
)
from embedcache.data.tokenize import segtok_words

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WordVectorConfig:
    """Everything that decides how word vectors train.

    ``vector_size``, ``min_count``, ``epochs`` and ``window`` are as in ``gensim.models.Word2Vec``;
    ``max_lines`` caps the lines read from the main text; ``skip_gram`` (better for rare words on small
    corpora) rather than CBOW; ``extra_texts``: more text files (all of each), e.g. the training split of a
    treebank (``.conllu``). ``subwords = (min_n, max_n, buckets)`` trains fastText with character n-grams of
    ``min_n`` to ``max_n`` hashed into ``buckets`` vectors and writes Facebook's ``.bin`` (the n-gram table,
    ``buckets × vector_size`` floats, is the bulk of the file); unset, word2vec's binary format. With
    ``workers=1`` the vectors are the same on every run for the same ``seed``.
    """

    vector_size: int = 100
    min_count: int = 3
    epochs: int = 5
    max_lines: int | None = None
    seed: int = 0
    workers: int = 1
    window: int = 5
    skip_gram: bool = True
    extra_texts: tuple[str, ...] = ()
    subwords: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra_texts", tuple(str(path) for path in self.extra_texts))
        if self.subwords is not None:
            object.__setattr__(self, "subwords", tuple(self.subwords))
            if len(self.subwords) != 3:
                raise ValueError(f"subwords is (min_n, max_n, buckets), got {self.subwords!r}")
        for name in ("vector_size", "min_count", "epochs", "workers", "window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


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
    text_path: str | Path, out_path: str | Path, config: WordVectorConfig | None = None, **settings: Any
) -> KeyedVectors:
    """Train word2vec (or fastText) on ``text_path`` (UTF-8, one document per line) and write the vectors to
    the ``.bin`` file ``out_path`` (its folder is created).

    The settings are the fields of :class:`WordVectorConfig`: a whole ``config``, keywords, or both (the
    keywords replace the config's fields).

    Returns:
        The trained vectors.
    """
    config = dataclasses.replace(config or WordVectorConfig(), **settings)
    sentences, model = _fit(text_path, config)
    min_count, vector_size, subwords = config.min_count, config.vector_size, config.subwords
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


def _fit(text_path: str | Path, config: WordVectorConfig) -> tuple[list[list[str]], Word2Vec]:
    """The tokenised lines and the model trained on them."""
    sentences = tokenized_lines(text_path, config.max_lines)
    for extra in config.extra_texts:
        sentences += tokenized_lines(extra)
    if not sentences:
        raise ValueError(f"{text_path}: no tokens to train word vectors on")
    settings = dict(
        vector_size=config.vector_size, window=config.window, min_count=config.min_count,
        sg=int(config.skip_gram), epochs=config.epochs, seed=config.seed, workers=config.workers,
    )  # fmt: skip
    if config.subwords is None:
        return sentences, Word2Vec(sentences, **settings)
    min_n, max_n, buckets = config.subwords
    return sentences, FastText(sentences, min_n=min_n, max_n=max_n, bucket=buckets, **settings)


def main(argv: Sequence[str] | None = None) -> None:
    """The command line: one ``--option`` per :class:`WordVectorConfig` field (lists comma-separated)."""
    parser = argparse.ArgumentParser(description="Train word2vec or fastText vectors.")
    parser.add_argument("text_path", type=Path)
    parser.add_argument("out_path", type=Path)
    for name, default in field_defaults(WordVectorConfig).items():
        option = f"--{name.replace('_', '-')}"
        parser.add_argument(option, dest=name, metavar="VALUE", help=f"default {default!r}")
    args = parser.parse_args(argv)
    try:
        config = WordVectorConfig(**_options(vars(args)))
    except (RecipeError, ValueError) as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    train_word_vectors(args.text_path, args.out_path, config)


def _options(values: dict[str, Any]) -> dict[str, Any]:
    """The options given, read as :class:`WordVectorConfig` values (``3,6,50000`` for a list)."""
    table, types = Table(Path("the command line")), field_types(WordVectorConfig)
    chosen = {}
    for name, expected in types.items():
        raw = values.get(name)
        if raw is None:
            continue
        value = [parse_value(item) for item in raw.split(",")] if takes_list(expected) else parse_value(raw)
        chosen[name] = checked_value(name, value, expected, table)
    return chosen


if __name__ == "__main__":
    main()
