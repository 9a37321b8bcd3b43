"""Which LM time step holds each token's vector: Flair's extraction offsets, computed for a batch at once.

``FlairEmbeddings._add_embeddings_internal`` (flair 0.15.1) walks every token with running offsets. The same
offsets follow from two cumulative sums per batch:

- forward LM: the state right after the token's last character (``with_whitespace``: after the following
  separator) — ``len(start) + Σ_{k≤j} len_k + Σ_{k<j} sep_k``;
- backward LM (reads the reversed text): ``len(start) + len(text) - Σ_{k<j} (len_k + sep_k)``, minus one
  without whitespace;

where ``sep_k`` is 1 if the LM text has a separator after token k (always for ``tokenized_lm``, else when
``whitespace_after > 0``). Flair advances by one separator even where ``whitespace_after`` is 2 or more while
its plain text keeps all the spaces; this module keeps that convention so vectors stay identical to Flair's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ExtractionOptions:
    """Flair's ``FlairEmbeddings`` options that change the LM input or the extracted time step."""

    is_forward_lm: bool
    with_whitespace: bool = True
    tokenized_lm: bool = True
    is_lower: bool = False
    start_marker: str = "\n"
    end_marker: str = " "


def sentence_text(tokens: Sequence[str], whitespace_after: Sequence[int], tokenized_lm: bool) -> str:
    """The text Flair gives the LM: tokens joined by single spaces, or with the original spacing.

    With the original spacing, nothing follows the last token, as in Flair's ``Sentence.to_plain_string``;
    but where Flair's ``rstrip`` also eats the last tokens' own whitespace characters (a token ``"\\u3000"``
    or ``"a\\t"`` at the end), so that their time steps fall outside the text (an IndexError in Flair, or a
    state read from the padding), every character of every token is kept here.
    """
    if tokenized_lm:
        return " ".join(tokens)
    spaced = (token + " " * spaces for token, spaces in zip(tokens[:-1], whitespace_after[:-1], strict=True))
    return "".join(spaced) + (tokens[-1] if tokens else "")


def lm_input_strings(texts: Sequence[str], options: ExtractionOptions) -> list[str]:
    """Strings as the LM reads them: lower-cased if asked, reversed for a backward LM, with markers."""
    start, end = options.start_marker, options.end_marker
    strings = (text.lower() for text in texts) if options.is_lower else iter(texts)
    if options.is_forward_lm:
        return [f"{start}{text}{end}" for text in strings]
    return [f"{start}{text[::-1]}{end}" for text in strings]


def token_time_steps(
    token_lengths: np.ndarray,
    separator_after: np.ndarray,
    sentence_lengths: np.ndarray,
    text_lengths: np.ndarray,
    options: ExtractionOptions,
) -> np.ndarray:
    """The LM time step of every token of a batch.

    Args:
        token_lengths: ``(n_tokens,)`` characters per token, sentence after sentence.
        separator_after: ``(n_tokens,)`` 1 where the LM text has a separator after the token, else 0.
        sentence_lengths: ``(n_sentences,)`` tokens per sentence.
        text_lengths: ``(n_sentences,)`` characters of each sentence's text (before lower-casing).
        options: the extraction options.

    Returns:
        ``(n_tokens,)`` int64 time steps into the ``(chars, batch, hidden)`` LM states.
    """
    first_token = np.cumsum(sentence_lengths) - sentence_lengths  # (B,)

    def exclusive_cumsum_in_sentence(values: np.ndarray) -> np.ndarray:
        running = np.concatenate(([0], np.cumsum(values)))  # (n + 1,) exclusive sums over the batch
        return running[:-1] - np.repeat(running[first_token], sentence_lengths)

    chars_before = exclusive_cumsum_in_sentence(token_lengths)  # (n,)
    separators_before = exclusive_cumsum_in_sentence(separator_after)  # (n,)
    start = len(options.start_marker)
    if options.is_forward_lm:
        steps = start + chars_before + token_lengths + separators_before
    else:
        steps = start + np.repeat(text_lengths, sentence_lengths) - chars_before - separators_before
    return steps if options.with_whitespace else steps - 1


def flat_state_rows(time_steps: np.ndarray, sentence_lengths: np.ndarray, batch_size: int) -> torch.Tensor:
    """Rows of the LM states viewed as ``(chars * batch, hidden)``: ``step * batch + sentence``."""
    sentence_of_token = np.repeat(np.arange(batch_size), sentence_lengths)
    return torch.from_numpy(time_steps * batch_size + sentence_of_token)
