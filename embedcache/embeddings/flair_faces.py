"""The Flair faces of embedcache's embedders: ``flair.embeddings.TokenEmbeddings`` for drop-in use in Flair.

:class:`CharLMEmbeddings` (a ``FlairEmbeddings`` drop-in) wraps a
:class:`~embedcache.embeddings.charlm.CharLMEncoder`; :class:`WordEmbeddings` (a ``WordEmbeddings`` drop-in)
wraps :class:`~embedcache.embeddings.words.WordVectors`. The faces only translate between Flair's
``Sentence`` objects and the native batch contract, so they import Flair and the cores do not: a saved
embedcache model loads and tags with the cores alone.
"""

from __future__ import annotations

from itertools import chain
from os import PathLike
from pathlib import Path
from typing import Any

import flair
from flair.data import Sentence
from flair.embeddings import TokenEmbeddings
from flair.embeddings.base import register_embeddings
from flair.models import LanguageModel
from gensim.models import KeyedVectors

from embedcache.embeddings.base import TokenizedSentences, TokenVectors, WhitespaceAfter
from embedcache.embeddings.char_language_model import CharLanguageModel
from embedcache.embeddings.charlm import CharLMEncoder
from embedcache.embeddings.language_model import lm_settings, resolve_language_model
from embedcache.embeddings.words import VectorFormat, WordVectors, load_keyed_vectors


def _flair_lowercases(model: object) -> bool:
    """Flair lower-cases the text for some of its named LMs (the CLEF-HIPE ones); so do we."""
    if not isinstance(model, str) or Path(model).exists():
        return False
    from embedcache.embeddings.flair_names import lookup_flair_lm

    named = lookup_flair_lm(model)
    return named is not None and named.is_lower


@register_embeddings("embedcache.CharLMEmbeddings")
class CharLMEmbeddings(TokenEmbeddings):
    """Contextual string embeddings with exact memory in every storage mode; a ``FlairEmbeddings`` drop-in.

    Swap ``FlairEmbeddings(lm)`` for ``CharLMEmbeddings(lm)`` inside ``StackedEmbeddings``, ``SequenceTagger``
    and ``ModelTrainer``; add :class:`embedcache.interop.StorageModePlugin` to the trainer's plugins so the
    global storage mode follows its ``embeddings_storage_mode``.

    Args:
        model: a ``flair.models.LanguageModel`` or a native :class:`CharLanguageModel`, a Flair LM checkpoint
            (``.pt``, loaded with ``weights_only=True``), an LM saved by embedcache (``.safetensors`` +
            ``.json``, loaded as a :class:`CharLanguageModel`), or a Flair model name (``"news-forward"``,
            ``"mix-backward"``, …), from Flair's cache folder or downloaded there.
        fine_tune, chars_per_chunk, with_whitespace, tokenized_lm, is_lower: as in ``FlairEmbeddings``.
        name: the embedding name (key of ``Token.get_embedding``); derived from the model by default.
        trust_remote_pickle: allow a full unpickle of a checkpoint the safe loader refuses (runs its code).

    Example:
        >>> emb = CharLMEmbeddings("lm-forward.pt")  # doctest: +SKIP
        >>> emb.embed(flair.data.Sentence("I love Berlin ."))  # doctest: +SKIP
    """

    def __init__(
        self,
        model: LanguageModel | CharLanguageModel | str | Path,
        fine_tune: bool = False,
        chars_per_chunk: int = 512,
        with_whitespace: bool = True,
        tokenized_lm: bool = True,
        is_lower: bool = False,
        name: str | None = None,
        trust_remote_pickle: bool = False,
    ) -> None:
        super().__init__()
        lm, default_name = resolve_language_model(model, trust_remote_pickle=trust_remote_pickle)
        self.encoder = CharLMEncoder(
            lm,
            chars_per_chunk=chars_per_chunk,
            with_whitespace=with_whitespace,
            tokenized_lm=tokenized_lm,
            is_lower=is_lower or _flair_lowercases(model),
            fine_tune=fine_tune,
            name=name or default_name,
        )
        self.name = self.encoder.name
        self.fine_tune = fine_tune
        self.static_embeddings = not fine_tune
        self.to(flair.device)
        self.eval()

    @property
    def embedding_length(self) -> int:
        return self.encoder.embedding_length

    @property
    def lm(self) -> LanguageModel | CharLanguageModel:
        return self.encoder.lm

    def train(self, mode: bool = True) -> CharLMEmbeddings:
        return super().train(self.fine_tune and mode)

    def embed_batch(
        self, sentences: TokenizedSentences, whitespace_after: WhitespaceAfter | None = None
    ) -> TokenVectors:
        """The tensor-level path (see :meth:`CharLMEncoder.embed_batch`), for the cache and the tagger."""
        return self.encoder.embed_batch(sentences, whitespace_after)

    def fingerprint(self) -> str:
        return self.encoder.fingerprint()

    def _add_embeddings_internal(self, sentences: list[Sentence]) -> list[Sentence]:
        tokens = [[token.text for token in sentence.tokens] for sentence in sentences]
        spaces = [[token.whitespace_after for token in sentence.tokens] for sentence in sentences]
        vectors = self.encoder.token_tensors(tokens, spaces)
        for token, vector in zip(chain.from_iterable(s.tokens for s in sentences), vectors, strict=True):
            token.set_embedding(self.name, vector)
        return sentences

    def to_params(self) -> dict[str, Any]:
        lm, options = self.encoder.lm, self.encoder.options
        return {
            "fine_tune": self.fine_tune,
            "chars_per_chunk": self.encoder.chars_per_chunk,
            "with_whitespace": options.with_whitespace,
            "tokenized_lm": options.tokenized_lm,
            "is_lower": options.is_lower,
            "name": self.name,
            "model_params": {
                "dictionary": lm.dictionary,
                **lm_settings(lm),
                "has_decoder": lm.decoder is not None,
            },
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> CharLMEmbeddings:
        params = dict(params)
        lm = LanguageModel(**params.pop("model_params"))
        return cls(lm, **params)

    def __str__(self) -> str:
        return self.name


@register_embeddings("embedcache.WordEmbeddings")
class WordEmbeddings(TokenEmbeddings):
    """Static word vectors as a Flair ``TokenEmbeddings``, over a :class:`WordVectors` (see its lookup rules).

    Example:
        >>> emb = WordEmbeddings("glove.6B.100d.txt")  # doctest: +SKIP
        >>> emb.embed(flair.data.Sentence("Apple eats pies"))  # doctest: +SKIP

    Args:
        source: a :class:`WordVectors`; a gensim ``KeyedVectors`` (a ``FastTextKeyedVectors`` keeps its
            subword vectors); or a file: ``.bin`` (word2vec binary, or fastText by its magic number),
            ``.txt``/``.vec`` (word2vec text, or GloVe when the first line is not a ``count dim`` header),
            ``.kv``/``.gensim``/``.model`` (gensim native, which is pickle).
        format: the file format; ``"auto"`` guesses it as described for ``source``.
        lowercase_fallback: try the lower-cased and digit-normalised forms of words not found as is.
        name: the Flair embedding name; defaults to the file path.
        allow_pickle: allow loading gensim native files. Pickle runs code from the file: trusted files only.
    """

    def __init__(
        self,
        source: WordVectors | KeyedVectors | str | PathLike[str],
        *,
        format: VectorFormat = "auto",
        lowercase_fallback: bool = True,
        name: str | None = None,
        allow_pickle: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(source, WordVectors):
            self.words = source
        else:
            from_file = not isinstance(source, KeyedVectors)
            kv = load_keyed_vectors(source, format, allow_pickle) if from_file else source
            default_name = str(source) if from_file else "words"
            self.words = WordVectors.from_keyed_vectors(
                kv, lowercase_fallback=lowercase_fallback, name=name if name is not None else default_name
            )
        self.name = self.words.name
        self.static_embeddings = True
        self.to(flair.device)

    @property
    def embedding_length(self) -> int:
        return self.words.embedding_length

    @property
    def vocabulary(self) -> list[str]:
        return self.words.vocabulary

    @property
    def subword(self) -> tuple[int, int, int] | None:
        return self.words.subword

    def embed_batch(
        self, sentences: TokenizedSentences, whitespace_after: WhitespaceAfter | None = None
    ) -> TokenVectors:
        """The tensor-level path (see :meth:`WordVectors.embed_batch`), for the cache and the tagger."""
        return self.words.embed_batch(sentences, whitespace_after)

    def fingerprint(self) -> str:
        return self.words.fingerprint()

    def _add_embeddings_internal(self, sentences: list[Sentence]) -> list[Sentence]:
        """One lookup for the batch, then per-token views from a single ``unbind``."""
        batch = self.words.embed_batch([[token.text for token in sentence] for sentence in sentences])
        tokens = [token for sentence in sentences for token in sentence]
        for token, vector in zip(tokens, batch.vectors.unbind(0), strict=True):
            token.set_embedding(self.name, vector)
        return sentences

    def to_params(self) -> dict[str, Any]:
        """Everything but the tables, which Flair saves with the module state."""
        return self.words.to_params()

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> WordEmbeddings:
        """Zero tables of the saved shape; Flair then loads the state dict into them."""
        return cls(WordVectors.from_params(params))

    def __str__(self) -> str:
        return self.name
