"""Contextual string embeddings from character LMs: memory-exact, one gather per batch.

:class:`CharLMEncoder` is the core: text → character ids → LM states → token vectors, all per batch. It runs
embedcache's native :class:`~embedcache.embeddings.char_language_model.CharLanguageModel` or Flair's
``LanguageModel`` alike, and imports no Flair itself.
:class:`~embedcache.embeddings.flair_faces.CharLMEmbeddings` is the Flair face over it, a drop-in for
``flair.embeddings.FlairEmbeddings``.

Vectors equal Flair's bit for bit on the CPU for the same LM, batch and options, because the LM sees the same
character ids in the same chunks and each token reads the same time step (see
:mod:`embedcache.embeddings.positions`); only how the rows are taken out of the states differs (see
:mod:`embedcache.embeddings.gather`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import astuple
from itertools import chain
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from embedcache.checksums import digest_tensors
from embedcache.embeddings.base import (
    TokenizedSentences,
    TokenVectors,
    WhitespaceAfter,
    check_sentences,
    check_whitespace_after,
    sentence_offsets,
)
from embedcache.embeddings.char_language_model import CharLanguageModel
from embedcache.embeddings.chars import CharIndex
from embedcache.embeddings.gather import gather_padded, gather_rows, row_views
from embedcache.embeddings.language_model import default_lm_name, is_language_model
from embedcache.embeddings.positions import (
    ExtractionOptions,
    flat_state_rows,
    lm_input_strings,
    sentence_text,
    token_time_steps,
)
from embedcache.lazy_imports import lazy_exports
from embedcache.settings import get_storage_mode

if TYPE_CHECKING:
    from flair.models import LanguageModel


class LMRunner(Protocol):
    """What runs a char LM's forward pass instead of the LM itself: an exported copy on another runtime."""

    name: str
    """The runtime and precision (``onnx-int8``): part of the encoder's fingerprint, as its vectors differ."""

    def init_hidden(self, batch_size: int) -> tuple[torch.Tensor, ...]: ...

    def forward(
        self, input: torch.Tensor, hidden: tuple[torch.Tensor, ...], decode: bool = False
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]: ...


# 2: plain-text sentences keep their last tokens' whitespace characters (positions.sentence_text).
_FINGERPRINT_VERSION = b"embedcache.charlm/2"


class CharLMEncoder(torch.nn.Module):
    """Runs a character LM over a batch and extracts every token's vector.

    Args:
        lm: the character language model (forward or backward): a native :class:`CharLanguageModel` or a
            Flair ``LanguageModel`` (with ``fine_tune`` the parameters of that very object are trained).
        chars_per_chunk: characters per LM pass; longer texts are run in chunks with the state carried over.
        with_whitespace: take the state after the separator following a token, else after its last character.
        tokenized_lm: the LM reads tokens joined by single spaces, else the original spacing.
        is_lower: lower-case the text before the LM reads it.
        fine_tune: let gradients reach the LM (then vectors change during training and are never cached).
        name: what the embedder is called in a saved model (``embedcache info``); the LM's direction and size
            by default.
    """

    def __init__(
        self,
        lm: CharLanguageModel | LanguageModel,
        *,
        chars_per_chunk: int = 512,
        with_whitespace: bool = True,
        tokenized_lm: bool = True,
        is_lower: bool = False,
        fine_tune: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(chars_per_chunk, int) or chars_per_chunk < 1:
            raise ValueError(f"chars_per_chunk must be a positive int, got {chars_per_chunk!r}")
        if not is_language_model(lm):
            why = " (Flair's LanguageModel.to() and .cuda() return None: move the model, then pass it)"
            got = f"{type(lm).__name__}{why if lm is None else ''}"
            raise TypeError(f"expected a CharLanguageModel or a flair LanguageModel, got {got}")
        self.lm = lm
        self.chars = CharIndex(lm.dictionary)
        self.chars_per_chunk = chars_per_chunk
        self.fine_tune = fine_tune
        self.name = name or default_lm_name(lm)
        self.options = ExtractionOptions(
            is_forward_lm=lm.is_forward_lm,
            with_whitespace=with_whitespace,
            tokenized_lm=tokenized_lm,
            is_lower=is_lower,
            # Flair's rule: LMs saved before document_delimiter existed start every text with "\n".
            start_marker=lm.document_delimiter if "document_delimiter" in lm.__dict__ else "\n",
        )
        self.runner: LMRunner | None = None
        self.train(False)

    @property
    def embedding_length(self) -> int:
        return self.lm.nout or self.lm.hidden_size

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    @property
    def static_embeddings(self) -> bool:
        """True unless fine-tuned: then the vectors change as the LM trains, and must not be cached."""
        return not self.fine_tune

    def train(self, mode: bool = True) -> CharLMEncoder:
        # The LM's dropout stays off unless it is being fine-tuned, as in Flair.
        return super().train(self.fine_tune and mode)

    def run_lm_with(self, runner: LMRunner | None) -> None:
        """Run the LM's forward passes with ``runner`` (an ONNX Runtime session) instead of the torch LM.

        The runner must compute what :attr:`lm` computes (an export of it, see
        :mod:`embedcache.embeddings.onnx_lm`); :meth:`fingerprint` stays the LM's. ``None``: torch again.
        """
        if runner is not None and self.fine_tune:
            raise ValueError(
                f"{self.name}: a fine-tuned LM trains in torch; it cannot run on another backend"
            )
        self.runner = runner

    def hidden_states(self, strings: Sequence[str]) -> torch.Tensor:
        """``(chars, batch, hidden)`` LM states for LM input strings, run in ``chars_per_chunk`` pieces."""
        lm = self.runner or self.lm
        ids = self.chars.encode_padded(strings).to(self.device, non_blocking=True)  # (B, L)
        hidden = lm.init_hidden(len(strings))
        outputs = []
        for chunk in ids.split(self.chars_per_chunk, dim=1):
            output, hidden = lm.forward(chunk.t(), hidden, decode=False)  # (chunk, B, H)
            outputs.append(output)
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    def locate_tokens(
        self, sentences: TokenizedSentences, whitespace_after: WhitespaceAfter | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """Run the LM on a batch and find every token in its states.

        Returns:
            ``(states, rows, lengths)``: the ``(chars, batch, hidden)`` states (``None`` when the batch has
            no token, so the LM is not run), the ``(n_tokens,)`` int64 row of each token in the states viewed
            as ``(chars * batch, hidden)``, and the ``(batch,)`` int64 tokens per sentence.
        """
        sentences = check_sentences(sentences)
        spaces = check_whitespace_after(whitespace_after, sentences)
        lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
        token_lengths = np.fromiter((len(t) for t in chain.from_iterable(sentences)), dtype=np.int64)
        if token_lengths.size == 0:
            return None, torch.empty(0, dtype=torch.int64), torch.from_numpy(lengths)
        tokenized = self.options.tokenized_lm
        texts = [
            sentence_text(tokens, gaps, tokenized) for tokens, gaps in zip(sentences, spaces, strict=True)
        ]
        if tokenized:
            separator_after = np.ones_like(token_lengths)
        else:
            separator_after = np.fromiter((w > 0 for w in chain.from_iterable(spaces)), dtype=np.int64)
        text_lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        steps = token_time_steps(token_lengths, separator_after, lengths, text_lengths, self.options)
        rows = flat_state_rows(steps, lengths, len(sentences))
        with torch.set_grad_enabled(self.fine_tune and torch.is_grad_enabled()):
            states = self.hidden_states(lm_input_strings(texts, self.options))
        return (states if self.fine_tune else states.detach()), rows, torch.from_numpy(lengths)

    def embed_batch(
        self, sentences: TokenizedSentences, whitespace_after: WhitespaceAfter | None = None
    ) -> TokenVectors:
        """All token vectors of a batch in one owning ``(n_tokens, D)`` tensor (on the host for ``cpu``)."""
        states, rows, lengths = self.locate_tokens(sentences, whitespace_after)
        offsets = sentence_offsets(lengths.tolist())
        if states is None:
            return TokenVectors(torch.zeros(0, self.embedding_length, device=self.device), offsets)
        return TokenVectors(gather_rows(states, rows, get_storage_mode()), offsets)

    def embed_padded(
        self, sentences: TokenizedSentences, whitespace_after: WhitespaceAfter | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token vectors gathered straight into a zero-padded ``(batch, max_tokens, D)`` tensor.

        This is the tagger's input on the compute device; the LM states are dropped on return.

        Returns:
            ``(padded, lengths)`` with ``lengths`` the ``(batch,)`` int64 tokens per sentence.
        """
        states, rows, lengths = self.locate_tokens(sentences, whitespace_after)
        if states is None:
            return torch.zeros(len(lengths), 0, self.embedding_length, device=self.device), lengths
        return gather_padded(states.reshape(-1, states.shape[-1]), rows, lengths), lengths

    def token_tensors(
        self, sentences: TokenizedSentences, whitespace_after: WhitespaceAfter | None = None
    ) -> tuple[torch.Tensor, ...]:
        """One ``(D,)`` tensor per token, made in one call, following the global storage mode.

        ``none``: views of the LM states (no copy; nothing outlives the batch). ``gpu``/``cpu``: views of one
        owning ``(n_tokens, D)`` block per batch, so keeping them costs exactly ``n_tokens × D`` elements.
        """
        mode = get_storage_mode()
        states, rows, _ = self.locate_tokens(sentences, whitespace_after)
        if states is None:
            return ()
        if mode == "none":
            return row_views(states, rows)
        return gather_rows(states, rows, mode).unbind(0)

    def fingerprint(self) -> str:
        """:meth:`lm_fingerprint`, and the runner's name when another runtime runs the LM.

        Vectors of an int8 runner are not torch's: a cache of them must not be read back for torch's.
        """
        if self.runner is None:
            return self.lm_fingerprint()
        return hashlib.sha256(f"{self.lm_fingerprint()}/{self.runner.name}".encode()).hexdigest()

    def lm_fingerprint(self) -> str:
        """sha256 over the LM weights, its characters and every option that changes the vectors."""
        digest = hashlib.sha256(_FINGERPRINT_VERSION)
        digest.update(repr((astuple(self.options), self.chars_per_chunk, self.lm.recurrent_type)).encode())
        digest.update(b"\0".join(self.lm.dictionary.idx2item))
        weights = sorted(self.lm.state_dict().items())
        digest_tensors(digest, ((name, t) for name, t in weights if not name.startswith("decoder.")))
        return digest.hexdigest()


# The Flair face lived in this module before it moved to flair_faces; it is still importable from here, and
# importing it from here imports Flair, as it always did.
__getattr__, __dir__ = lazy_exports(__name__, {"CharLMEmbeddings": "embedcache.embeddings.flair_faces"})
