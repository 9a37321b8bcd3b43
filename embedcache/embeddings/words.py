"""Static word vectors (word2vec, GloVe, fastText) from gensim, as a ``TokenEmbedder`` and a Flair face.

A batch is embedded with one id lookup into a ``(V + 1, D)`` table, so the native path gets one
``(n_tokens, D)`` tensor and the Flair face one ``unbind`` into views of it, never one tensor per token.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import struct
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import flair
import numpy as np
import torch
import torch.nn.functional as F
from flair.data import Sentence
from flair.embeddings import TokenEmbeddings
from flair.embeddings.base import register_embeddings
from gensim.models import KeyedVectors
from gensim.models.fasttext import FastTextKeyedVectors, ft_ngram_hashes, load_facebook_vectors

from embedcache.embeddings.base import (
    TokenizedSentences,
    TokenVectors,
    WhitespaceAfter,
    check_sentences,
    sentence_offsets,
)
from embedcache.settings import get_storage_mode

logger = logging.getLogger(__name__)

VectorFormat = Literal["auto", "word2vec-binary", "word2vec-text", "glove", "fasttext-bin", "gensim"]
FINGERPRINT_VERSION = "embedcache.WordEmbeddings/1"
_FASTTEXT_MAGIC = struct.pack("<i", 793712314)  # first int32 of every Facebook fastText .bin since 2017
_DIGIT = re.compile(r"\d")
_MAX_CACHED_FALLBACKS = 1_000_000  # bounds the fallback cache on endless streams of unseen words
# What gensim raises on malformed input; OSError is left alone so permission errors keep their meaning.
_PARSE_ERRORS = (ValueError, TypeError, RuntimeError, EOFError, IndexError, KeyError, struct.error)


def _sniff_format(path: Path) -> VectorFormat:
    """Pick the reader from the suffix and, where the suffix is ambiguous, the first bytes of the file."""
    suffix = path.suffix.lower()
    if suffix == ".bin":
        with path.open("rb") as f:
            return "fasttext-bin" if f.read(4) == _FASTTEXT_MAGIC else "word2vec-binary"
    if suffix in (".txt", ".vec"):
        with path.open(encoding="utf-8", errors="replace") as f:
            fields = f.readline().split()
        # word2vec text starts with a "count dim" header; GloVe starts straight with "word v1 v2 ...".
        return "word2vec-text" if len(fields) == 2 and all(x.isdigit() for x in fields) else "glove"
    if suffix in (".kv", ".gensim", ".model"):
        return "gensim"
    raise ValueError(
        f"{path}: cannot tell the vector format from the suffix {suffix!r}; "
        "pass format='word2vec-binary', 'word2vec-text', 'glove', 'fasttext-bin' or 'gensim'"
    )


def load_keyed_vectors(
    path: str | PathLike[str], format: VectorFormat = "auto", allow_pickle: bool = False
) -> KeyedVectors:
    """Read word vectors from a file with gensim, refusing pickled (gensim native) files unless allowed.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file cannot be parsed, or it is a gensim native file and ``allow_pickle`` is False.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"word vector file not found: {path}")
    resolved = _sniff_format(path) if format == "auto" else format
    if resolved == "gensim" and not allow_pickle:
        raise ValueError(
            f"{path} is a gensim native file, and loading it unpickles it, which can run arbitrary code "
            "from the file. Pass allow_pickle=True only for files you trust, or convert it once where you "
            "trust it: KeyedVectors.load(path).save_word2vec_format('vectors.bin', binary=True)"
        )
    try:
        if resolved == "fasttext-bin":
            kv = load_facebook_vectors(str(path))
        elif resolved == "gensim":
            kv = KeyedVectors.load(str(path))
        else:
            kv = KeyedVectors.load_word2vec_format(
                str(path), binary=resolved == "word2vec-binary", no_header=resolved == "glove"
            )
    except _PARSE_ERRORS as error:
        raise ValueError(f"{path}: cannot read it as {resolved} word vectors ({error})") from error
    logger.info("loaded %d %d-d word vectors from %s (%s)", len(kv), kv.vector_size, path, resolved)
    return kv


@register_embeddings("embedcache.WordEmbeddings")
class WordEmbeddings(TokenEmbeddings):
    """Static word vectors, as a ``TokenEmbedder`` (:meth:`embed_batch`) and a Flair ``TokenEmbeddings``.

    A word is looked up as is; then, if ``lowercase_fallback``, as ``word.lower()``, with every digit of
    that replaced by ``#``, and by ``0`` (the same chain as Flair 0.15's ``WordEmbeddings``, so models
    trained with either see the same vectors). A word found nowhere gets an all-zero vector (an extra
    last row of the table), except with fastText ``.bin`` sources: there it gets gensim's subword vector,
    the mean of its character n-gram vectors (zero if it has no n-grams). The n-gram table is kept in
    the module state, so a saved and reloaded model gives OOV words the same vectors.

    Example:
        >>> emb = WordEmbeddings("glove.6B.100d.txt")  # doctest: +SKIP
        >>> emb.embed_batch([["Apple", "eats", "pies"]]).vectors.shape  # doctest: +SKIP
        torch.Size([3, 100])

    Args:
        source: a gensim ``KeyedVectors`` (a ``FastTextKeyedVectors`` keeps its subword vectors) or a
            file: ``.bin`` (word2vec binary, or fastText by its magic number), ``.txt``/``.vec``
            (word2vec text, or GloVe when the first line is not a ``count dim`` header), ``.kv``/
            ``.gensim``/``.model`` (gensim native, which is pickle).
        format: the file format; ``"auto"`` guesses it as described for ``source``.
        lowercase_fallback: try the lower-cased and digit-normalised forms of words not found as is.
        name: the Flair embedding name; defaults to the file path.
        allow_pickle: allow loading gensim native files. Pickle runs code from the file: trusted files only.
    """

    def __init__(
        self,
        source: KeyedVectors | str | PathLike[str],
        *,
        format: VectorFormat = "auto",
        lowercase_fallback: bool = True,
        name: str | None = None,
        allow_pickle: bool = False,
    ) -> None:
        super().__init__()
        from_file = not isinstance(source, KeyedVectors)
        kv = load_keyed_vectors(source, format, allow_pickle) if from_file else source
        self.name = name if name is not None else str(source) if from_file else "words"
        self.static_embeddings = True
        self.lowercase_fallback = lowercase_fallback
        self.vocabulary: list[str] = [str(word) for word in kv.index_to_key]
        self._vocab: dict[str, int] = {word: i for i, word in enumerate(self.vocabulary)}
        self._fallback_ids: dict[str, int] = {}
        vectors = torch.as_tensor(np.asarray(kv.vectors, dtype=np.float32))  # (V, D)
        zero_row = vectors.new_zeros(1, kv.vector_size)  # the vector of words found nowhere
        self.register_buffer("vectors", torch.cat([vectors, zero_row]))  # (V + 1, D)
        self.subword: tuple[int, int, int] | None = None
        if isinstance(kv, FastTextKeyedVectors) and kv.bucket > 0:
            self.subword = (kv.min_n, kv.max_n, kv.bucket)
            ngrams = torch.as_tensor(np.asarray(kv.vectors_ngrams, dtype=np.float32))  # (bucket, D)
            self.register_buffer("ngram_vectors", ngrams.clone())
        self.to(flair.device)

    @property
    def embedding_length(self) -> int:
        """D, the width of every word vector."""
        return self.vectors.shape[1]

    def embed_batch(
        self, sentences: TokenizedSentences, whitespace_after: WhitespaceAfter | None = None
    ) -> TokenVectors:
        """Embed a batch with one table lookup; ``whitespace_after`` is ignored (words do not depend on it).

        The result lies on the table's device, or on the CPU in storage mode ``"cpu"``. It owns compact
        storage, so keeping it never pins anything else.
        """
        batch = check_sentences(sentences)
        vectors = self._lookup([word for sentence in batch for word in sentence])
        if get_storage_mode() == "cpu":
            vectors = vectors.cpu()
        return TokenVectors(vectors, sentence_offsets([len(sentence) for sentence in batch]))

    def fingerprint(self) -> str:
        """sha256 over format version, options, vocabulary and tables (all of them, on every call)."""
        digest = hashlib.sha256(FINGERPRINT_VERSION.encode())
        options = {"lowercase_fallback": self.lowercase_fallback, "subword": self.subword}
        for part in (options, self.vocabulary):
            encoded = json.dumps(part, ensure_ascii=False).encode()
            digest.update(len(encoded).to_bytes(8, "little") + encoded)
        for table in self._tables():
            digest.update(str(tuple(table.shape)).encode())
            digest.update(table.detach().cpu().contiguous().numpy())
        return digest.hexdigest()

    def _tables(self) -> list[torch.Tensor]:
        return [self.vectors] if self.subword is None else [self.vectors, self.ngram_vectors]

    def _add_embeddings_internal(self, sentences: list[Sentence]) -> list[Sentence]:
        """Flair face: one lookup for the batch, then per-token views from a single ``unbind``."""
        batch = self.embed_batch([[token.text for token in sentence] for sentence in sentences])
        tokens = [token for sentence in sentences for token in sentence]
        for token, vector in zip(tokens, batch.vectors.unbind(0), strict=True):
            token.set_embedding(self.name, vector)
        return sentences

    def _lookup(self, words: Sequence[str]) -> torch.Tensor:
        """The ``(len(words), D)`` vectors of ``words``: one ``embedding`` call, then OOV subwords."""
        ids = [self._word_id(word) for word in words]
        device = self.vectors.device
        vectors = F.embedding(torch.tensor(ids, dtype=torch.long, device=device), self.vectors)
        unknown = len(self.vocabulary)
        oov_rows = [i for i, word_id in enumerate(ids) if word_id == unknown]
        if self.subword is not None and oov_rows:
            oov_words = [words[i] for i in oov_rows]
            vectors[torch.tensor(oov_rows, device=device)] = self._subword_vectors(oov_words)
        return vectors

    def _word_id(self, word: str) -> int:
        """Row of ``word`` in the table, following the Flair fallback chain; fallbacks are cached."""
        found = self._vocab.get(word)
        if found is not None:
            return found
        cached = self._fallback_ids.get(word)
        if cached is None:
            cached = self._fallback_id(word)
            if len(self._fallback_ids) >= _MAX_CACHED_FALLBACKS:
                self._fallback_ids.clear()
            self._fallback_ids[word] = cached
        return cached

    def _fallback_id(self, word: str) -> int:
        if self.lowercase_fallback:
            lower = word.lower()
            for candidate in (lower, _DIGIT.sub("#", lower), _DIGIT.sub("0", lower)):
                if candidate in self._vocab:
                    return self._vocab[candidate]
        return len(self.vocabulary)

    def _subword_vectors(self, words: list[str]) -> torch.Tensor:
        """gensim's fastText OOV vectors: the mean of each word's n-gram vectors, zero without n-grams."""
        assert self.subword is not None
        min_n, max_n, bucket = self.subword
        hashes = [ft_ngram_hashes(word, min_n, max_n, bucket) for word in words]
        device = self.ngram_vectors.device
        flat = torch.tensor([h for hs in hashes for h in hs], dtype=torch.long, device=device)  # all n-grams
        offsets = sentence_offsets([len(hs) for hs in hashes])[:-1].to(device)
        return F.embedding_bag(flat, self.ngram_vectors, offsets, mode="mean")  # (len(words), D)

    def to_params(self) -> dict[str, Any]:
        """Everything but the tables, which Flair saves with the module state."""
        return {
            "vocabulary": self.vocabulary,
            "embedding_length": self.embedding_length,
            "lowercase_fallback": self.lowercase_fallback,
            "subword": self.subword,
            "name": self.name,
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> WordEmbeddings:
        """Rebuild with zero tables of the saved shape; Flair then loads the state dict into them."""
        vocabulary, dim, subword = params["vocabulary"], params["embedding_length"], params["subword"]
        kv = KeyedVectors(dim) if subword is None else FastTextKeyedVectors(dim, *subword)
        kv.add_vectors(vocabulary, np.zeros((len(vocabulary), dim), dtype=np.float32))
        if subword is not None:
            kv.vectors_ngrams = np.zeros((subword[2], dim), dtype=np.float32)
        return cls(kv, lowercase_fallback=params["lowercase_fallback"], name=params["name"])

    def extra_repr(self) -> str:
        return f"{len(self.vocabulary)} words, dim {self.embedding_length}, subword={self.subword}"
