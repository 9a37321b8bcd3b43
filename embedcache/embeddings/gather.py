"""The storage rule: from LM states to token vectors, copying only where keeping the result would alias.

A token's vector is one row of the LM states viewed as ``(chars * batch, hidden)``. Flair indexes that row
once per token (``states[offset, i, :]``), which yields a *view*: cheap, but a kept view keeps the whole
``(chars, batch, hidden)`` tensor alive. embedcache instead:

- gathers all rows of a batch with one ``index_select`` when the vectors are kept (``gpu``/``cpu`` storage):
  the result owns exactly ``n_tokens × hidden`` elements;
- makes per-token views with one ``tensor_split`` call when nothing is kept (``none`` storage), so no copy at
  all is made for the Flair face;
- gathers straight into the padded ``(batch, max_tokens, hidden)`` tagger input for the native path.
"""

from __future__ import annotations

from operator import itemgetter

import numpy as np
import torch

from embedcache.settings import StorageMode


def to_host(vectors: torch.Tensor) -> torch.Tensor:
    """One batched device→host copy, into pinned memory so later host→device copies can be asynchronous."""
    if vectors.device.type == "cpu":
        return vectors
    host = torch.empty(vectors.shape, dtype=vectors.dtype, device="cpu", pin_memory=True)
    host.copy_(vectors)  # blocking: callers may read the result on the host right away
    return host


def gather_rows(states: torch.Tensor, rows: torch.Tensor, mode: StorageMode) -> torch.Tensor:
    """Token vectors as one owning ``(n_tokens, hidden)`` tensor placed as ``mode`` says.

    Args:
        states: ``(chars, batch, hidden)`` LM states.
        rows: ``(n_tokens,)`` int64 rows of ``states`` viewed as ``(chars * batch, hidden)``.
        mode: ``"cpu"`` moves the result to host memory; ``"gpu"``/``"none"`` leave it on the compute device.
    """
    flat = states.reshape(-1, states.shape[-1])  # (chars * batch, hidden), a view
    vectors = flat.index_select(0, rows.to(flat.device))  # (n_tokens, hidden), owning and compact
    return to_host(vectors) if mode == "cpu" else vectors


def row_views(states: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-token ``(hidden,)`` views of ``states`` made by one ``split`` call (no copy).

    The flat states are split into alternating gaps and token rows; ``split`` with a list of sizes is the
    cheapest way PyTorch offers to make many views at once (about half the cost of ``tensor_split``).

    Args:
        states: ``(chars, batch, hidden)`` contiguous LM states.
        rows: ``(n_tokens,)`` distinct int64 rows of ``states`` viewed as ``(chars * batch, hidden)``.

    Returns:
        One view per entry of ``rows``, in the order of ``rows``.
    """
    hidden = states.shape[-1]
    order = np.argsort(rows.cpu().numpy(), kind="stable")
    starts = rows.cpu().numpy()[order] * hidden  # (n,) ascending element offsets of the token rows
    gaps = starts - np.concatenate(([0], starts[:-1] + hidden))  # (n,) elements skipped before each row
    sizes = np.stack((gaps, np.full_like(gaps, hidden)), axis=1).reshape(-1).tolist()  # [g0, H, g1, H, ...]
    flat = states.contiguous().reshape(-1)
    sizes.append(flat.numel() - int(starts[-1]) - hidden)
    in_row_order = flat.split(sizes)[1::2]
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    return itemgetter(*position.tolist())(in_row_order) if order.size > 1 else in_row_order


def padded_index(lengths: torch.Tensor, max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each cell of a padded batch comes from in a flat ``(n_tokens, D)`` block.

    Args:
        lengths: ``(batch,)`` tokens per sentence.
        max_len: padded length; the longest sentence by default.

    Returns:
        ``(token_index, mask)``: ``(batch, max_len)`` int64 row of the flat block for each cell (0 at pads,
        which the mask removes) and the ``(batch, max_len)`` bool mask of real tokens.
    """
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() else 0
    mask = torch.arange(max_len) < lengths.unsqueeze(1)  # (B, T)
    token_index = (mask.reshape(-1).cumsum(0) - 1).clamp(min=0).reshape(mask.shape)  # (B, T)
    return token_index.masked_fill(~mask, 0), mask


def gather_padded(flat: torch.Tensor, rows: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Gather straight into a zero-padded ``(batch, max_tokens, D)`` tensor with one ``index_select``.

    Args:
        flat: ``(n_rows, D)`` source block (LM states viewed flat, or token vectors).
        rows: ``(n_tokens,)`` row of ``flat`` for each token, sentence after sentence.
        lengths: ``(batch,)`` tokens per sentence.
    """
    token_index, mask = padded_index(lengths)
    if rows.numel() == 0:
        return flat.new_zeros((*mask.shape, flat.shape[-1]))
    cell_rows = rows.cpu()[token_index].reshape(-1).to(flat.device)  # (B * T,)
    padded = flat.index_select(0, cell_rows).reshape(*mask.shape, flat.shape[-1])  # (B, T, D)
    return padded.masked_fill_(~mask.to(flat.device).unsqueeze(-1), 0.0)
