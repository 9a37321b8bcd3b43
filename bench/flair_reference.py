"""Flair 0.15.1 instrumented: its code replicated for timing where Flair has no function to call on its own,
and a trainer plugin that times its epochs as embedcache's ``Trainer`` records them.

Flair's extraction loop sits inside ``FlairEmbeddings._add_embeddings_internal``, after the LM call, so it
cannot be timed on given states without copying it. The copy below keeps Flair's lines, names and attribute
reads, so its cost is Flair's.
"""

from __future__ import annotations

import time

import torch
from flair.data import Sentence
from flair.embeddings import FlairEmbeddings
from flair.trainers.plugins.base import TrainerPlugin


def flair_token_loop(
    embeddings: FlairEmbeddings, sentences: list[Sentence], states: torch.Tensor, clone: bool
) -> None:
    """Flair 0.15.1's per-token extraction on ``(chars, batch, hidden)`` LM ``states``, ``self`` renamed.

    ``clone=True`` adds the per-token ``.clone()`` Flair made before PR #1074 (each token then owns its
    vector: exact memory when embeddings are kept, at one copy per token). The ``if clone`` test costs both
    variants the same few nanoseconds per token.
    """
    start_marker = (
        embeddings.lm.document_delimiter if "document_delimiter" in embeddings.lm.__dict__ else "\n"
    )
    for i, sentence in enumerate(sentences):
        sentence_text = (
            sentence.to_tokenized_string() if embeddings.tokenized_lm else sentence.to_plain_string()
        )

        offset_forward: int = len(start_marker)
        offset_backward: int = len(sentence_text) + len(start_marker)

        for token in sentence.tokens:
            offset_forward += len(token.text)
            if embeddings.is_forward_lm:
                offset_with_whitespace = offset_forward
                offset_without_whitespace = offset_forward - 1
            else:
                offset_with_whitespace = offset_backward
                offset_without_whitespace = offset_backward - 1

            # offset mode that extracts at whitespace after last character
            if embeddings.with_whitespace:
                embedding = states[offset_with_whitespace, i, :]
            # offset mode that extracts at last character
            else:
                embedding = states[offset_without_whitespace, i, :]

            if embeddings.tokenized_lm or token.whitespace_after > 0:
                offset_forward += 1
                offset_backward -= 1

            offset_backward -= len(token.text)

            if clone:
                embedding = embedding.clone()
            token.set_embedding(embeddings.name, embedding)


class EpochTimer(TrainerPlugin):
    """Times Flair's epochs from their start to the end of their dev evaluation, like embedcache."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self.started = 0.0

    @TrainerPlugin.hook
    def before_training_epoch(self, **_: object) -> None:
        self.started = time.perf_counter()

    @TrainerPlugin.hook
    def after_evaluation(self, **_: object) -> None:
        self.seconds.append(time.perf_counter() - self.started)
