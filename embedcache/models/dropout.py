"""Flair's two extra dropouts for taggers, on padded ``(batch, tokens, features)`` tensors."""

from __future__ import annotations

import torch


class WordDropout(torch.nn.Module):
    """Zeroes whole token vectors with probability ``p`` (no rescaling, as Flair's ``WordDropout``)."""

    def __init__(self, p: float = 0.05) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        if not self.training or self.p == 0:
            return x
        keep = x.new_empty(x.shape[0], x.shape[1], 1).bernoulli_(1 - self.p)  # (B, T, 1)
        return x * keep


class LockedDropout(torch.nn.Module):
    """One dropout mask per sequence, shared by all its tokens (Flair's ``LockedDropout``)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        if not self.training or self.p == 0:
            return x
        keep = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - self.p) / (1 - self.p)  # (B, 1, D)
        return x * keep
