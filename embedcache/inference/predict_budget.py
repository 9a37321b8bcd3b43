"""How much memory tagging a batch takes, and the batch size that keeps it under a budget (``--max-memory``).

The arithmetic is an upper bound on the transient tensors a batch holds at its peak (LM states, the padded
input and the tagger's activations); the model's weights and the runtime come on top.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from embedcache.data.sentence import TaggedSentence
from embedcache.inference.tagger_group import TaggerGroup

if TYPE_CHECKING:
    from embedcache.models.tagger import TaggerNetwork

log = logging.getLogger(__name__)


def lm_input_chars(sentence: TaggedSentence) -> int:
    """Characters a character LM reads for ``sentence``: a start marker, then each token and a space."""
    return 1 + sum(len(token) + 1 for token in sentence.tokens)


def _lm_state_width(embedder: object) -> int:
    """Hidden size of an embedder's character LM, 0 for embedders without one (word vectors)."""
    return int(getattr(getattr(embedder, "lm", None), "hidden_size", 0))


# Per token, besides the vectors: the bookkeeping of a time step (Viterbi back-pointers and forward-backward
# scores are small tensors per step: ~2 KB each with 17 tags, measured on the CPU).
_STEP_FLOATS = 512


def transient_widths(model: TaggerNetwork | TaggerGroup) -> tuple[int, int]:
    """``(floats per LM character, floats per token)`` that tagging one sentence holds at its peak.

    - per character: the states of one character LM at a time, twice (its chunks' outputs and their
      concatenation): ``2 × max hidden``;
    - per token: ``5 × D`` (the embedders' vectors, their concatenation, the padded input, its
      re-projection and the packed copy the LSTM reads), ``8 × hidden_size × rnn_layers`` (the BiLSTM's
      input gates and outputs), ``4 × tags`` (emissions and CRF scores) and :data:`_STEP_FLOATS`; for a
      pipeline, the sum over its taggers (a bound: they run one after the other on shared vectors).

    Measured on the CPU with float32, the peak stays below this (e.g. 399 MB against 603 MB for a sentence
    of 20,000 tokens with the bundled en-upos model): a bound, not an average.
    """
    taggers = as_pipeline(model).taggers
    embedders = [e for tagger in taggers for e in tagger.embeddings.embedders]
    lm_width = 2 * max((_lm_state_width(e) for e in embedders), default=0)
    return lm_width, sum(_token_width(tagger) for tagger in taggers)


def _token_width(tagger: TaggerNetwork) -> int:
    rnn_width = 8 * tagger.config.hidden_size * tagger.config.rnn_layers if tagger.rnn is not None else 0
    return 5 * tagger.embeddings.embedding_length + rnn_width + 4 * len(tagger.tags) + _STEP_FLOATS


def as_pipeline(model: TaggerNetwork | TaggerGroup) -> TaggerGroup:
    return model if isinstance(model, TaggerGroup) else TaggerGroup([model])


def sentence_nbytes(tagger: TaggerNetwork | TaggerGroup, n_chars: int, n_tokens: int) -> int:
    """Bytes one sentence adds to a predict batch at its peak, all float32 (see :func:`transient_widths`)::

        4 × (n_chars × floats per LM character + n_tokens × floats per token)

    What grows with the batch; the model's weights and the runtime come on top.
    """
    return _nbytes(transient_widths(tagger), n_chars, n_tokens)


def _nbytes(widths: tuple[int, int], n_chars: int, n_tokens: int) -> int:
    lm_width, token_width = widths
    return 4 * (n_chars * lm_width + n_tokens * token_width)


class InputOverBudgetError(ValueError):
    """One input needs more memory than the budget by itself, so no batch size could tag it within it.

    Attributes:
        position: the index of that input among those given.
        detail: what it needs and why (the arithmetic), without the position.
    """

    def __init__(self, position: int, detail: str) -> None:
        super().__init__(f"input {position}: {detail}")
        self.position, self.detail = position, detail


def budgeted_batch_size(
    tagger: TaggerNetwork | TaggerGroup,
    sentences: Sequence[TaggedSentence],
    batch_size: int,
    memory_budget_bytes: int,
) -> int:
    """The largest batch size up to ``batch_size`` whose batches fit ``memory_budget_bytes`` (at least 1).

    A batch is padded to its longest sentence, so every sentence is counted at the longest character and
    token counts of the input: ``budget // sentence_nbytes(max chars, max tokens)``.

    Raises:
        InputOverBudgetError: a sentence alone needs more than the budget (``position`` is its index).
    """
    if type(memory_budget_bytes) is not int or memory_budget_bytes < 1:
        raise ValueError(f"memory_budget_bytes must be a positive int of bytes, got {memory_budget_bytes!r}")
    widths = transient_widths(tagger)
    for position, sentence in enumerate(sentences):
        _refuse_over_budget(sentence, widths, memory_budget_bytes, position)
    max_chars = max((lm_input_chars(s) for s in sentences), default=0)
    max_tokens = max((len(s) for s in sentences), default=0)
    per_sentence = max(sentence_nbytes(tagger, max_chars, max_tokens), 1)
    chosen = max(1, min(batch_size, memory_budget_bytes // per_sentence))
    log.info(
        "memory budget %s bytes: batch size %d (requested %d); a sentence of up to %d characters and "
        "%d tokens needs %s bytes",
        f"{memory_budget_bytes:,}", chosen, batch_size, max_chars, max_tokens, f"{per_sentence:,}",
    )  # fmt: skip
    return chosen


def _refuse_over_budget(
    sentence: TaggedSentence, widths: tuple[int, int], budget: int, position: int
) -> None:
    n_chars, n_tokens = lm_input_chars(sentence), len(sentence)
    needed = _nbytes(widths, n_chars, n_tokens)
    if needed > budget:
        lm_width, token_width = widths
        raise InputOverBudgetError(
            position,
            f"a sentence of {n_tokens:,} tokens needs {needed:,} bytes to tag = 4 × ({n_chars:,} LM "
            f"characters × {lm_width:,} + {n_tokens:,} tokens × {token_width:,}), over the memory budget of "
            f"{budget:,} bytes; split it into shorter sentences or raise the budget",
        )
