"""The tagger's loss as the module that DistributedDataParallel wraps, and what DDP must leave alone."""

from __future__ import annotations

import contextlib

import torch

from embedcache.inference.tagger import SequenceTagger


class TaggerLoss(torch.nn.Module):
    """The tagger's summed loss as a module's ``forward``: what DistributedDataParallel wraps and hooks."""

    def __init__(self, tagger: SequenceTagger) -> None:
        super().__init__()
        self.tagger = tagger

    def forward(self, padded: torch.Tensor, lengths: torch.Tensor, tag_ids: torch.Tensor) -> torch.Tensor:
        return self.tagger.loss(padded, lengths, tag_ids)


def static_state_names(tagger: SequenceTagger) -> list[str]:
    """Names (in a :class:`TaggerLoss`) that DDP should neither broadcast nor reduce: every buffer (word
    vectors) and, unless they are fine-tuned, the embedders' parameters, which get no gradient."""
    names = [f"tagger.{name}" for name, _ in tagger.named_buffers()]
    if tagger.embeddings.is_static:
        names += [f"tagger.embeddings.{name}" for name, _ in tagger.embeddings.named_parameters()]
    return names


def gradient_sync(model: torch.nn.Module, last: bool) -> contextlib.AbstractContextManager[None]:
    """DDP all-reduces in the backward pass of an optimiser step's last mini-batch only."""
    no_sync = getattr(model, "no_sync", None)  # DistributedDataParallel's; a plain module has none
    if last or no_sync is None:
        return contextlib.nullcontext()
    context: contextlib.AbstractContextManager[None] = no_sync()
    return context
