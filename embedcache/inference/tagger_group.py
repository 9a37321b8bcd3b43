"""Several taggers over the same text, each distinct embedder loaded once and run once per batch.

A POS and an NER tagger trained on the same character LMs hold two copies of identical weights and, run one
after the other, compute identical LM states twice; the LMs dominate the cost of tagging. A
:class:`TaggerGroup` (what a :class:`~embedcache.inference.pipeline.Pipeline` is) deduplicates the taggers'
embedders by :meth:`~embedcache.embeddings.base.TokenEmbedder.fingerprint` (the first copy of each is kept
and the taggers are rewired to it, so the duplicates are released), runs each *shared* embedder once per
batch, concatenates their vectors and gathers them into one zero-padded ``(B, T, ΣD)`` block. Each tagger
then reads its own columns of that block:

- a tagger whose embedders are a contiguous run of the shared ones, in order (the usual case: every tagger
  on the same forward and backward LMs), reads a *view* ``block[..., a:b]``, no copy;
- any other tagger (its embedders in another order, or interleaved with another tagger's) reads a column
  selection, ``index_select`` on the last dimension: one copy of its own width.

Taggers with different embedders still work: only what is identical is shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from embedcache.embeddings.base import TokenEmbedder
from embedcache.embeddings.gather import gather_padded
from embedcache.embeddings.stack import EmbeddingStack

if TYPE_CHECKING:
    from embedcache.models.tagger import TaggerNetwork


@dataclass(frozen=True)
class WeightBytes:
    """Weight bytes of a pipeline.

    Attributes:
        shared_embedders: the distinct embedders (LMs, word vectors), each counted once.
        taggers: each tagger's own network (all but its embedders), by name.
        separately: what the taggers hold loaded one by one (each counting its own copy of its embedders).
    """

    shared_embedders: int
    taggers: dict[str, int]
    separately: int

    @property
    def total(self) -> int:
        return self.shared_embedders + sum(self.taggers.values())


class TaggerGroup:
    """Taggers that share their identical embedders, embedded once per batch for all of them.

    What the predict driver needs of a :class:`~embedcache.inference.pipeline.Pipeline` (which adds
    ``predict``); a single tagger is driven as a group of one.

    Args:
        taggers: at least one tagger. Their embedders are deduplicated in place: a tagger whose LM equals
            an earlier tagger's (same fingerprint) is rewired to that LM object.
        names: one name per tagger (output columns and JSON keys); default: the tag types.

    Raises:
        ValueError: no tagger, or names that are not one distinct name per tagger.
    """

    def __init__(self, taggers: Sequence[TaggerNetwork], names: Sequence[str] | None = None) -> None:
        self.taggers = list(taggers)
        if not self.taggers:
            raise ValueError("a pipeline needs at least one tagger")
        self.names = list(names) if names is not None else [tagger.tag_type for tagger in self.taggers]
        if len(self.names) != len(self.taggers) or len(set(self.names)) != len(self.names):
            raise ValueError(
                f"a pipeline needs one distinct name per tagger, got {self.names}; pass names=[...]"
            )
        self.embedders, members = share_embedders(self.taggers)
        widths = [embedder.embedding_length for embedder in self.embedders]
        self.columns = [tagger_columns(indices, widths) for indices in members]

    def __len__(self) -> int:
        return len(self.taggers)

    def embed(
        self, sentences: Sequence[Sequence[str]], whitespace_after: Sequence[Sequence[int]] | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Each tagger's zero-padded ``(B, T, D_k)`` float32 input, read from one shared block, and lengths.

        Each shared embedder runs once; one gather builds the ``(B, T, ΣD)`` block the taggers read from. A
        lone tagger has nothing to share and embeds as it always does (:meth:`SequenceTagger.embed`).
        """
        if len(self.taggers) == 1:
            padded, lengths = self.taggers[0].embed(sentences, whitespace_after)
            return [padded], lengths
        parts = [embedder.embed_batch(sentences, whitespace_after) for embedder in self.embedders]
        device = parts[0].vectors.device
        vectors = torch.cat([part.vectors.to(device) for part in parts], dim=1)  # (n_tokens, ΣD)
        lengths = parts[0].lengths
        block = gather_padded(vectors, torch.arange(vectors.shape[0]), lengths)  # (B, T, ΣD)
        inputs = [
            _columns_of(block, columns).to(tagger.device, torch.float32, non_blocking=True)
            for tagger, columns in zip(self.taggers, self.columns, strict=True)
        ]
        return inputs, lengths

    def weight_nbytes(self) -> WeightBytes:
        """Bytes of the weights (parameters and buffers) this pipeline holds, and would hold unshared."""
        shared = sum(_module_nbytes(e) for e in self.embedders if isinstance(e, torch.nn.Module))
        own = {
            name: _module_nbytes(tagger) - _module_nbytes(tagger.embeddings)
            for name, tagger in zip(self.names, self.taggers, strict=True)
        }
        separately = sum(_module_nbytes(tagger) for tagger in self.taggers)
        return WeightBytes(shared, own, separately)


def share_embedders(taggers: Sequence[TaggerNetwork]) -> tuple[list[TokenEmbedder], list[list[int]]]:
    """The distinct embedders of ``taggers`` (first copy kept) and, per tagger, the indices of its own.

    Taggers holding a duplicate get a new :class:`EmbeddingStack` of the kept copies, so the duplicate's
    weights are freed once nothing else refers to them. A lone tagger is taken as it is (no fingerprints,
    which hash every weight).
    """
    if len(taggers) == 1:
        embedders = list(taggers[0].embeddings.embedders)
        return embedders, [list(range(len(embedders)))]
    shared: list[TokenEmbedder] = []
    position: dict[str, int] = {}
    members = []
    for tagger in taggers:
        indices = []
        for embedder in tagger.embeddings.embedders:
            key = embedder.fingerprint()
            if key not in position:
                position[key] = len(shared)
                shared.append(embedder)
            indices.append(position[key])
        members.append(indices)
        kept = [shared[i] for i in indices]
        if any(a is not b for a, b in zip(kept, tagger.embeddings.embedders, strict=True)):
            tagger.embeddings = EmbeddingStack(kept)
    return shared, members


def tagger_columns(indices: Sequence[int], widths: Sequence[int]) -> slice | torch.Tensor:
    """The columns of the shared block a tagger reads: a slice for a contiguous run, else an index tensor.

    Args:
        indices: the tagger's embedders as positions among the shared ones, in the tagger's order.
        widths: the vector width of each shared embedder.
    """
    starts = [sum(widths[:i]) for i in range(len(widths))]
    if list(indices) == list(range(indices[0], indices[0] + len(indices))):
        return slice(starts[indices[0]], starts[indices[-1]] + widths[indices[-1]])
    return torch.cat([torch.arange(starts[i], starts[i] + widths[i]) for i in indices])  # (D_k,)


def _columns_of(block: torch.Tensor, columns: slice | torch.Tensor) -> torch.Tensor:
    if isinstance(columns, slice):
        return block[..., columns]  # (B, T, D_k), a view
    return block.index_select(-1, columns.to(block.device))  # (B, T, D_k), a copy


def _module_nbytes(module: torch.nn.Module) -> int:
    """Bytes of a module's distinct parameter and buffer storages (a shared tensor counted once)."""
    storages = {}
    for tensor in [*module.parameters(), *module.buffers()]:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())
