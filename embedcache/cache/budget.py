"""Byte accounting before a build: the exact size of a store, and what to do when it exceeds a budget.

Budget policy (``on_over_budget``), decided *before* any LM work from the exact estimate:

- ``"error"`` (default): the build fails with :class:`OverBudgetError`, naming the bytes needed, the budget
  and the ways out. Nothing is silently moved somewhere slower.
- ``"fallback"``: the first placement at or after the requested one in the order ``gpu → cpu → disk``
  whose budget holds the store is used, with a warning; if none does, :class:`OverBudgetError`.

``memory_budget_bytes`` is either one int, the budget of the *requested* placement only (the common case:
"this much fits on the GPU, otherwise use host memory"), or a mapping from placement to budget; a
placement without a budget is unlimited.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Literal, get_args

import torch

from embedcache.cache.corpus_tokens import SentenceLike, normalize_sentences
from embedcache.cache.placement import PLACEMENTS, Placement, resolve_dtype, store_nbytes, validate_placement
from embedcache.embeddings.base import TokenEmbedder
from embedcache.embeddings.stack import EmbeddingsLike
from embedcache.embeddings.stack import as_embedders as flat_embedders

logger = logging.getLogger(__name__)

OverBudgetPolicy = Literal["error", "fallback"]
MemoryBudget = int | Mapping[Placement, int] | None


class OverBudgetError(ValueError):
    """The store would not fit the memory budget of any placement the policy allows."""


def as_embedders(embeddings: EmbeddingsLike) -> list[TokenEmbedder]:
    """The embedders whose vectors a cache holds, concatenated along D in this order; none fine-tuned.

    Takes what :func:`embedcache.embeddings.stack.as_embedders` takes: embedcache embedders, stacks and
    Flair embedding objects.
    """
    embedders = flat_embedders(embeddings)
    for i, embedder in enumerate(embedders):
        if getattr(embedder, "fine_tune", False):
            raise ValueError(
                f"embeddings[{i}] ({type(embedder).__name__}) is fine-tuned: its vectors change during "
                "training, so caching them would train on stale vectors; use storage mode 'none' instead"
            )
    return embedders


def estimate(
    sentences: Iterable[SentenceLike],
    embeddings: EmbeddingsLike,
    dtype: torch.dtype | str = torch.float16,
) -> int:
    """Exact bytes a cache of ``sentences`` will hold: ``(n_tokens + 1) × D × itemsize``, D of all embedders.

    Example:
        >>> estimate([["I", "love", "Berlin"]], encoder, torch.float16)  # doctest: +SKIP
        2048  # (3 + 1) x 256 x 2
    """
    dim = sum(embedder.embedding_length for embedder in as_embedders(embeddings))
    return store_nbytes(normalize_sentences(sentences).n_tokens, dim, resolve_dtype(dtype))


def _budgets(requested: Placement, memory_budget_bytes: MemoryBudget) -> dict[Placement, int]:
    if memory_budget_bytes is None:
        return {}
    if isinstance(memory_budget_bytes, Mapping):
        budgets = {validate_placement(p): b for p, b in memory_budget_bytes.items()}
    else:
        budgets = {requested: memory_budget_bytes}
    for placement, budget in budgets.items():
        if type(budget) is not int or budget < 0:
            raise ValueError(
                f"memory budget for {placement!r} must be a non-negative int of bytes, got {budget!r}"
            )
    return budgets


def choose_placement(
    requested: Placement,
    nbytes: int,
    memory_budget_bytes: MemoryBudget = None,
    on_over_budget: OverBudgetPolicy = "error",
) -> Placement:
    """The placement to build in, by the budget policy described in the module docstring.

    Raises:
        OverBudgetError: no allowed placement has a budget of at least ``nbytes``.
    """
    requested = validate_placement(requested)
    if on_over_budget not in get_args(OverBudgetPolicy):
        raise ValueError(f"on_over_budget must be 'error' or 'fallback', got {on_over_budget!r}")
    budgets = _budgets(requested, memory_budget_bytes)
    allowed = PLACEMENTS[PLACEMENTS.index(requested) :] if on_over_budget == "fallback" else (requested,)
    for placement in allowed:
        if nbytes <= budgets.get(placement, nbytes):
            if placement != requested:
                logger.warning(
                    "embedding cache needs %s bytes, over the %r budget of %s bytes; using placement %r",
                    f"{nbytes:,}",
                    requested,
                    f"{budgets[requested]:,}",
                    placement,
                )
            return placement
    over = ", ".join(f"{p!r}: {budgets[p]:,} bytes" for p in allowed)
    remedy = "" if on_over_budget == "fallback" else ", or pass on_over_budget='fallback' (gpu → cpu → disk)"
    raise OverBudgetError(
        f"the embedding cache needs {nbytes:,} bytes, over memory_budget_bytes ({over}). Use "
        f"dtype=torch.float16 or torch.bfloat16 (half of float32), raise the budget{remedy}"
    )
