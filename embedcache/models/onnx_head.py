"""A tagger's head run by ONNX Runtime: re-projection → BiLSTM → emission scores, fp32 or int8.

With the char LMs on ONNX Runtime's int8 kernels, the tagger's own BiLSTM (over ``D``-wide token vectors,
both directions) is about half of what is left of a predict call on the CPU; its int8 graph runs it about 3×
faster than torch, and its fp32 graph gives torch's scores to ~1e-7. The CRF's Viterbi decoding and the
confidences stay in torch (:meth:`~embedcache.models.tagger.TaggerNetwork.decode`), as do training and the
loss: only inference runs the graph.

The graph is :meth:`~embedcache.models.tagger.TaggerNetwork.emissions` traced in eval mode (no dropout),
``(padded (B, T, D) float32, lengths (B,) int64) → scores (B, T, K)``; packing skips the pads as in torch
(ONNX's LSTM takes the lengths). Files and checks: :mod:`embedcache.onnx_graphs`; the fingerprint covers the
head's weights and shape, not the embedders' (they have their own exports).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from embedcache.checksums import digest_tensors
from embedcache.onnx_graphs import (
    ExportedGraph,
    Precision,
    cpu_session,
    default_cache_dir,
    export_module,
    verified_export,
)

if TYPE_CHECKING:
    from embedcache.models.tagger import TaggerNetwork

FORMAT = "embedcache.onnx-tagger-head/1"
_HEAD_LAYERS = ("reproject", "rnn", "emission")


def head_fingerprint(network: TaggerNetwork) -> str:
    """sha256 over the head's weights, its configuration and the width of its input."""
    digest = hashlib.sha256(FORMAT.encode())
    digest.update(repr((network.config, network.embeddings.embedding_length, len(network.tags))).encode())
    for name in _HEAD_LAYERS:
        layer = getattr(network, name)  # rnn is None in a tagger without one
        if layer is not None:
            digest_tensors(digest, layer.state_dict(prefix=f"{name}.").items())
    return digest.hexdigest()


def exported_head(
    network: TaggerNetwork, precision: Precision, directory: Path | None = None, rebuild: bool = True
) -> ExportedGraph:
    """The verified export of ``network``'s head in ``directory`` (default: the cache).

    Raises:
        OnnxBackendError: ``rebuild`` is False and the file cannot be used (the message names it).
    """
    export = ExportedGraph(
        directory or default_cache_dir(), head_fingerprint(network), precision, FORMAT, what="tagger head"
    )
    return verified_export(export, lambda path: _export_fp32(network, path), rebuild)


class _Head(torch.nn.Module):
    """The network's emission scores as a module of its own, the form the exporter traces."""

    def __init__(self, network: TaggerNetwork) -> None:
        super().__init__()
        self.network = network

    def forward(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.network.emissions(padded, lengths)


def _export_fp32(network: TaggerNetwork, path: Path) -> None:
    # Unequal lengths, one of them the full width, so that the traced graph packs as it must for any batch.
    padded = torch.zeros(3, 5, network.embeddings.embedding_length)
    lengths = torch.tensor([5, 2, 3])
    dynamic_axes = {
        "padded": {0: "batch", 1: "tokens"},
        "lengths": {0: "batch"},
        "scores": {0: "batch", 1: "tokens"},
    }
    export_module(_Head(network), (padded, lengths), path, (["padded", "lengths"], ["scores"]), dynamic_axes)


class OnnxHead:
    """Computes a network's emission scores with ONNX Runtime; set as ``network.head_runner``.

    Args:
        export: a verified export (:func:`exported_head`).
        threads: ONNX Runtime's intra-op threads for this session.
    """

    def __init__(self, export: ExportedGraph, threads: int = 1) -> None:
        self.session = cpu_session(export, threads)
        self.name = f"onnx-{export.precision}"
        self.model_nbytes = export.model_path.stat().st_size
        self.takes_lengths = "lengths" in {i.name for i in self.session.get_inputs()}  # not without a BiLSTM

    def __call__(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, T, K)`` scores of ``(B, T, D)`` token vectors and their ``(B,)`` lengths, in torch."""
        feeds = {"padded": padded.float().contiguous().numpy()}
        if self.takes_lengths:
            feeds["lengths"] = lengths.to(torch.int64).numpy()
        (scores,) = self.session.run(None, feeds)
        return torch.from_numpy(scores)
