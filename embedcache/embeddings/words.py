"""Static word vectors (word2vec, GloVe, fastText) as a ``TokenEmbedder``; files are read with gensim.

A batch is embedded with one id lookup into a ``(V + 1, D)`` table, so the native path gets one
``(n_tokens, D)`` tensor and the Flair face (:class:`~embedcache.embeddings.flair_faces.WordEmbeddings`) one
``unbind`` into views of it, never one tensor per token. :class:`WordVectors` imports neither Flair nor
gensim: a saved model's tables load without them; gensim is imported to read vector files, and for the
subword vectors of fastText models.
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
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from embedcache.embeddings.base import (
    TokenizedSentences,
    TokenVectors,
    WhitespaceAfter,
    check_sentences,
    sentence_offsets,
)
from embedcache.lazy_imports import lazy_exports
from embedcache.settings import get_storage_mode

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

logger = logging.getLogger(__name__)

VectorFormat = Literal["auto", "word2vec-binary", "word2vec-text", "glove", "fasttext-bin", "gensim"]
FINGERPRINT_VERSION = "embedcache.WordEmbeddings/1"  # the class's old name: fingerprints stay the same
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
    from gensim.models import KeyedVectors
    from gensim.models.fasttext import load_facebook_vectors

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


class WordVectors(torch.nn.Module):
    """Static word vectors as a ``TokenEmbedder``: one table lookup per batch.

    A word is looked up as is; then, if ``lowercase_fallback``, as ``word.lower()``, with every digit of
    that replaced by ``#``, and by ``0`` (the same chain as Flair 0.15's ``WordEmbeddings``, so models
    trained with either see the same vectors). A word found nowhere gets an all-zero vector (an extra
    last row of the table), except with fastText subwords: there it gets gensim's subword vector, the mean
    of its character n-gram vectors (zero if it has no n-grams). The n-gram table is kept in the module
    state, so a saved and reloaded model gives OOV words the same vectors.

    Args:
        vocabulary: the words, in the order of the rows of ``vectors``.
        vectors: ``(V, D)`` float32 word vectors.
        lowercase_fallback: try the lower-cased and digit-normalised forms of words not found as is.
        subword: fastText's ``(min_n, max_n, buckets)``, with ``ngram_vectors`` of ``(buckets, D)``.
        name: what the embedder is called (the Flair embedding name of its face).

    Example:
        >>> words = WordVectors.from_keyed_vectors(load_keyed_vectors("glove.6B.100d.txt"))  # doctest: +SKIP
        >>> words.embed_batch([["Apple", "eats", "pies"]]).vectors.shape  # doctest: +SKIP
        torch.Size([3, 100])
    """

    static_embeddings = True  # the vectors never change, so they may be cached
    vectors: torch.Tensor  # (V + 1, D) buffer, the last row the unknown word's zeros
    ngram_vectors: torch.Tensor  # (buckets, D) buffer, with subwords only

    def __init__(
        self,
        vocabulary: Sequence[str],
        vectors: torch.Tensor,
        *,
        lowercase_fallback: bool = True,
        subword: tuple[int, int, int] | None = None,
        ngram_vectors: torch.Tensor | None = None,
        name: str = "words",
    ) -> None:
        super().__init__()
        if (subword is None) != (ngram_vectors is None):
            raise ValueError("subword and ngram_vectors go together: give both or neither")
        self.name = name
        self.lowercase_fallback = lowercase_fallback
        self.vocabulary: list[str] = list(vocabulary)
        self._vocab: dict[str, int] = {word: i for i, word in enumerate(self.vocabulary)}
        self._fallback_ids: dict[str, int] = {}
        zero_row = vectors.new_zeros(1, vectors.shape[1])  # the vector of words found nowhere
        self.register_buffer("vectors", torch.cat([vectors, zero_row]))  # (V + 1, D)
        self.subword = subword
        if ngram_vectors is not None:
            self.register_buffer("ngram_vectors", ngram_vectors)  # (buckets, D)

    @classmethod
    def from_keyed_vectors(
        cls, kv: KeyedVectors, *, lowercase_fallback: bool = True, name: str = "words"
    ) -> WordVectors:
        """The vectors of a gensim ``KeyedVectors``; a ``FastTextKeyedVectors`` keeps its subword vectors."""
        from gensim.models.fasttext import FastTextKeyedVectors

        vectors = torch.as_tensor(np.asarray(kv.vectors, dtype=np.float32))  # (V, D)
        subword, ngrams = None, None
        if isinstance(kv, FastTextKeyedVectors) and kv.bucket > 0:
            subword = (kv.min_n, kv.max_n, kv.bucket)
            ngrams = torch.as_tensor(np.asarray(kv.vectors_ngrams, dtype=np.float32)).clone()  # (bucket, D)
        return cls([str(word) for word in kv.index_to_key], vectors, lowercase_fallback=lowercase_fallback,
                   subword=subword, ngram_vectors=ngrams, name=name)  # fmt: skip

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
            digest.update(table.detach().cpu().contiguous().numpy().data)
        return digest.hexdigest()

    def _tables(self) -> list[torch.Tensor]:
        return [self.vectors] if self.subword is None else [self.vectors, self.ngram_vectors]

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
        from gensim.models.fasttext import ft_ngram_hashes

        assert self.subword is not None
        min_n, max_n, bucket = self.subword
        hashes = [ft_ngram_hashes(word, min_n, max_n, bucket) for word in words]
        device = self.ngram_vectors.device
        flat = torch.tensor([h for hs in hashes for h in hs], dtype=torch.long, device=device)  # all n-grams
        offsets = sentence_offsets([len(hs) for hs in hashes])[:-1].to(device)
        return F.embedding_bag(flat, self.ngram_vectors, offsets, mode="mean")  # (len(words), D)

    def to_params(self) -> dict[str, Any]:
        """Everything but the tables (which are the module state): what :meth:`from_params` rebuilds from."""
        return {
            "vocabulary": self.vocabulary,
            "embedding_length": self.embedding_length,
            "lowercase_fallback": self.lowercase_fallback,
            "subword": self.subword,
            "name": self.name,
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> WordVectors:
        """Zero tables of the saved shape, for the saved state dict to be loaded into."""
        vocabulary, dim, subword = params["vocabulary"], params["embedding_length"], params["subword"]
        ngrams = None if subword is None else torch.zeros(subword[2], dim)
        subword = None if subword is None else tuple(subword)  # JSON gives a list
        name = params["name"] if params.get("name") is not None else "words"
        vectors = torch.zeros(len(vocabulary), dim)
        return cls(vocabulary, vectors, lowercase_fallback=params["lowercase_fallback"], subword=subword,
                   ngram_vectors=ngrams, name=name)  # fmt: skip

    def extra_repr(self) -> str:
        return f"{len(self.vocabulary)} words, dim {self.embedding_length}, subword={self.subword}"


# The Flair face lived in this module before it moved to flair_faces; it is still importable from here, and
# importing it from here imports Flair, as it always did.
__getattr__, __dir__ = lazy_exports(__name__, {"WordEmbeddings": "embedcache.embeddings.flair_faces"})
