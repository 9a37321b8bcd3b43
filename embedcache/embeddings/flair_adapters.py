"""Flair's embedding objects as embedcache embedders: a Flair user's stack runs on the native path unchanged.

:func:`adapt_flair_embeddings` turns one Flair object into embedcache embedders:

- ``FlairEmbeddings`` → a :class:`~embedcache.embeddings.charlm.CharLMEncoder` over the *same*
  ``LanguageModel`` object and options, so vectors are ``torch.equal`` to Flair's on the CPU and a
  ``fine_tune=True`` LM keeps training its own parameters;
- ``StackedEmbeddings`` → its members, in order (nested stacks flattened);
- ``WordEmbeddings`` → :class:`~embedcache.embeddings.words.WordVectors` with Flair's table, including its
  unknown-word row, and the same lower-case / digit fallback chain;
- any other *static* Flair ``TokenEmbeddings`` → :class:`FlairTokenEmbedder`, which lets Flair embed a batch
  and takes the vectors out in one compact ``(n_tokens, D)`` block, so the cache keeps exactly
  ``n_tokens × D`` elements of it like every other embedder.

Embeddings with trainable parameters outside a character LM (``CharacterEmbeddings``, ``OneHotEmbeddings``,
``WordEmbeddings(fine_tune=True)``, ``PooledFlairEmbeddings``' memory, …) are refused with an error that
names the class: their vectors change while the tagger trains, so they could never be cached, and embedcache's
model files could not hold them.

This module imports Flair; :func:`embedcache.embeddings.stack.as_embedders` imports it only when it meets a
Flair object.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from flair.data import Dictionary, Sentence
from flair.embeddings import FlairEmbeddings, StackedEmbeddings, TokenEmbeddings
from flair.embeddings import WordEmbeddings as FlairWordEmbeddings

from embedcache.embeddings.base import (
    TokenEmbedder,
    TokenizedSentences,
    TokenVectors,
    WhitespaceAfter,
    check_sentences,
    check_whitespace_after,
    sentence_offsets,
)
from embedcache.embeddings.charlm import CharLMEncoder
from embedcache.embeddings.words import WordVectors
from embedcache.settings import get_storage_mode

_GENERIC_FINGERPRINT_VERSION = b"embedcache.flair-adapter/1"


class UnsupportedFlairEmbeddings(TypeError):
    """A Flair embedding that embedcache cannot run: the message names the class and what to do instead."""


def adapt_flair_embeddings(embeddings: object) -> list[TokenEmbedder]:
    """embedcache embedders computing what the Flair embedding object ``embeddings`` computes, in order.

    Raises:
        UnsupportedFlairEmbeddings: a trainable embedding, or options embedcache does not reproduce.
    """
    if isinstance(embeddings, StackedEmbeddings):
        return [adapted for member in embeddings.embeddings for adapted in adapt_flair_embeddings(member)]
    if isinstance(embeddings, TokenEmbedder):  # embedcache's own Flair faces inside a Flair stack
        return [embeddings]
    if isinstance(embeddings, FlairEmbeddings):
        return [charlm_from_flair(embeddings)]
    if isinstance(embeddings, FlairWordEmbeddings):
        return [words_from_flair(embeddings)]
    if isinstance(embeddings, TokenEmbeddings):
        return [FlairTokenEmbedder(embeddings)]
    raise UnsupportedFlairEmbeddings(
        f"{type(embeddings).__name__} is not a Flair TokenEmbeddings; a sequence tagger needs one vector per "
        "token (document embeddings cannot be used)"
    )


def charlm_from_flair(embeddings: FlairEmbeddings) -> CharLMEncoder:
    """embedcache's extractor over the ``FlairEmbeddings``' own LM object and options."""
    return CharLMEncoder(
        embeddings.lm,
        fine_tune=embeddings.fine_tune,
        chars_per_chunk=embeddings.chars_per_chunk,
        with_whitespace=embeddings.with_whitespace,
        tokenized_lm=embeddings.tokenized_lm,
        is_lower=embeddings.is_lower,
        name=embeddings.name,
    )


def words_from_flair(embeddings: FlairWordEmbeddings) -> WordVectors:
    """The same table (unknown-word row included) and the same fallbacks as Flair's ``WordEmbeddings``."""
    name = type(embeddings).__name__
    if embeddings.fine_tune:
        _refuse_trainable(embeddings)
    if embeddings.field is not None:
        raise UnsupportedFlairEmbeddings(
            f"{name}(field={embeddings.field!r}) embeds a label instead of the token text; embedcache embeds "
            "text only: use WordEmbeddings without field"
        )
    if embeddings.stable:
        raise UnsupportedFlairEmbeddings(
            f"{name}(stable=True) normalises its vectors with a layer norm that embedcache does not "
            "reproduce; use stable=False"
        )
    table = embeddings.embedding.weight.detach().float().cpu()  # (V + 1, D): the last row is the unknown word
    words = _words_in_id_order(embeddings.vocab)
    adapted = WordVectors(words, table[: len(words)].clone(), lowercase_fallback=True, name=embeddings.name)
    adapted.vectors[-1] = table[len(words)]
    return adapted


def _words_in_id_order(vocab: dict[str, int]) -> list[str]:
    """Flair's ``word → row`` map as the list of words by row, checked to be rows ``0..V-1``."""
    words = [""] * len(vocab)
    for word, row in vocab.items():
        if not 0 <= row < len(vocab) or words[row]:
            raise UnsupportedFlairEmbeddings(
                f"WordEmbeddings: vocabulary rows are not 0..{len(vocab) - 1} ({word!r} → {row})"
            )
        words[row] = word
    return words


def _refuse_trainable(embeddings: TokenEmbeddings) -> None:
    raise UnsupportedFlairEmbeddings(
        f"{type(embeddings).__name__} has trainable parameters (static_embeddings=False or fine_tune=True): "
        "its vectors change while the tagger trains, so embedcache can neither cache them nor save them "
        "in its model files. Use it with fine_tune=False where it has that option, or train with Flair's "
        "ModelTrainer (embedcache's CharLMEmbeddings still work there)"
    )


class FlairTokenEmbedder(torch.nn.Module):
    """Any static Flair ``TokenEmbeddings`` as a :class:`~embedcache.embeddings.base.TokenEmbedder`.

    Flair embeds a batch of throw-away ``Sentence``s; the vectors of all tokens are stacked into one owning
    ``(n_tokens, D)`` tensor and the sentences dropped, so nothing Flair made outlives the batch.

    Args:
        embeddings: a Flair ``TokenEmbeddings`` whose ``static_embeddings`` is True.

    Raises:
        UnsupportedFlairEmbeddings: the embedding is trainable.
    """

    def __init__(self, embeddings: TokenEmbeddings) -> None:
        super().__init__()
        if not getattr(embeddings, "static_embeddings", False):
            _refuse_trainable(embeddings)
        self.flair_embeddings = embeddings
        self.static_embeddings = True
        self.fine_tune = False
        self.name = embeddings.name
        self.flair_embeddings.eval()

    @property
    def embedding_length(self) -> int:
        return self.flair_embeddings.embedding_length

    def train(self, mode: bool = True) -> FlairTokenEmbedder:
        return super().train(False)  # static: Flair's own dropouts stay off

    def embed_batch(
        self, sentences: TokenizedSentences, whitespace_after: WhitespaceAfter | None = None
    ) -> TokenVectors:
        """One ``(n_tokens, D)`` block (on the host in ``cpu`` storage) and the sentence offsets."""
        batch = check_sentences(sentences)
        spaces = check_whitespace_after(whitespace_after, batch)
        offsets = sentence_offsets([len(s) for s in batch])
        flair_batch = [_flair_sentence(tokens, gaps) for tokens, gaps in zip(batch, spaces, strict=True)]
        flair_batch = [s for s in flair_batch if len(s)]
        if not flair_batch:
            return TokenVectors(torch.zeros(0, self.embedding_length), offsets)
        names = self.flair_embeddings.get_names()
        with torch.no_grad():
            self.flair_embeddings.embed(flair_batch)
            vectors = torch.stack([t.get_embedding(names) for s in flair_batch for t in s])  # (n, D)
        return TokenVectors(vectors.cpu() if get_storage_mode() == "cpu" else vectors, offsets)

    def fingerprint(self) -> str:
        """sha256 over the class, the name, the options Flair reports and every tensor of the state."""
        digest = hashlib.sha256(_GENERIC_FINGERPRINT_VERSION)
        embeddings = self.flair_embeddings
        digest.update(f"{type(embeddings).__module__}.{type(embeddings).__qualname__}/{self.name}".encode())
        digest.update(_stable_repr(_flair_params(embeddings)).encode())
        for name, tensor in sorted(embeddings.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()


def _flair_sentence(tokens: Sequence[str], spaces: Sequence[int]) -> Sentence:
    sentence = Sentence(list(tokens))
    for token, gap in zip(sentence.tokens, spaces, strict=True):
        token.whitespace_after = gap
    return sentence


def _flair_params(embeddings: TokenEmbeddings) -> object:
    try:
        return embeddings.to_params()
    except NotImplementedError:
        return None


def _stable_repr(value: object) -> str:
    """A deterministic text of Flair parameters: containers recursively, dictionaries by their items."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k!r}:{_stable_repr(v)}" for k, v in sorted(value.items(), key=str)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_stable_repr(v) for v in value) + "]"
    if isinstance(value, Dictionary):
        return f"Dictionary({value.get_items()!r})"
    if isinstance(value, torch.Tensor):
        return f"Tensor{tuple(value.shape)}"
    if value is None or isinstance(value, (str, int, float, bool)):
        return repr(value)
    return type(value).__qualname__
