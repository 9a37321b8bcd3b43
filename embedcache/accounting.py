"""Exact memory accounting: the bytes held by the distinct storages behind a set of tensors.

Two tensors that view one storage hold its bytes once; a view of one row of a large tensor holds the whole
storage. This is what decides whether kept token embeddings cost ``n_tokens × D × dtype_size`` or whole LM
states, so tests and benchmarks assert it with exact integers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from flair.data import Sentence


def retained_nbytes(tensors: Iterable[torch.Tensor]) -> int:
    """Sum of ``nbytes`` over the distinct storages (by device and address) that ``tensors`` keep alive."""
    storages: dict[tuple[str, int], int] = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        storages[(str(tensor.device), storage.data_ptr())] = storage.nbytes()
    return sum(storages.values())


def token_embeddings(sentences: Iterable[Sentence]) -> Iterator[torch.Tensor]:
    """Every embedding tensor kept on the tokens of Flair sentences."""
    for sentence in sentences:
        for token in sentence.tokens:
            yield from token._embeddings.values()
