"""A character LM run by ONNX Runtime: its export, and the runner that stands in for the torch LM.

On the CPU the char LMs are most of the cost of tagging; ONNX Runtime's int8 LSTM runs them 2-4× faster
than torch's fp32 one (the files, their checks and the quantisation: :mod:`embedcache.onnx_graphs`).

What is exported: one LM step over a chunk, ``(ids (chars, batch), state…) → (states, state…)``: the
character embedding, the recurrent layer and the projection of
:class:`~embedcache.embeddings.char_language_model.CharLanguageModel`, with the recurrent state as input
and output so that :class:`~embedcache.embeddings.charlm.CharLMEncoder` carries it from chunk to chunk
exactly as with torch. The file's fingerprint is the encoder's
:meth:`~embedcache.embeddings.charlm.CharLMEncoder.lm_fingerprint` (the LM's weights, characters and
options).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from embedcache.embeddings.char_language_model import CharLanguageModel, Hidden
from embedcache.onnx_graphs import (
    ExportedGraph,
    OnnxBackendError,
    Precision,
    cpu_session,
    default_cache_dir,
    export_module,
    verified_export,
)

if TYPE_CHECKING:
    from embedcache.embeddings.charlm import CharLMEncoder

FORMAT = "embedcache.onnx-charlm/1"


def exported_lm(
    encoder: CharLMEncoder, precision: Precision, directory: Path | None = None, rebuild: bool = True
) -> ExportedGraph:
    """The verified export of ``encoder``'s LM in ``directory`` (default: the cache).

    Args:
        rebuild: export again when the file is missing, damaged or another LM's (a cache); else refuse.

    Raises:
        OnnxBackendError: ``rebuild`` is False and the file cannot be used (the message names it); the LM
            is a Flair ``LanguageModel`` (whose forward pass differs), not embedcache's own.
    """
    lm = encoder.lm
    if not isinstance(lm, CharLanguageModel):
        raise OnnxBackendError(
            f"{encoder.name}: a Flair LanguageModel; the onnx backend exports embedcache's own LM "
            "(save the tagger and load it, or load the LM with language_model.load_language_model)"
        )
    export = ExportedGraph(
        directory or default_cache_dir(), encoder.lm_fingerprint(), precision, FORMAT, what="LM"
    )
    return verified_export(export, lambda path: _export_fp32(lm, path), rebuild)


class _LMStep(torch.nn.Module):
    """The LM with its state as flat inputs and outputs, the form an ONNX graph takes."""

    def __init__(self, lm: CharLanguageModel) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, ids: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output, hidden = self.lm(ids, tuple(state))
        return (output, *hidden)


def _state_names(lm: CharLanguageModel, suffix: str = "") -> list[str]:
    return [f"state{i}{suffix}" for i in range(lm.state_count)]


def _export_fp32(lm: CharLanguageModel, path: Path) -> None:
    ids = torch.zeros(4, 2, dtype=torch.int64)  # (chars, batch): any sizes; both axes are dynamic
    inputs, outputs = ["ids", *_state_names(lm)], ["states", *_state_names(lm, "_out")]
    dynamic_axes = {name: {1: "batch"} for name in inputs[1:] + outputs[1:]}
    dynamic_axes |= {"ids": {0: "chars", 1: "batch"}, "states": {0: "chars", 1: "batch"}}
    export_module(_LMStep(lm), (ids, *lm.init_hidden(2)), path, (inputs, outputs), dynamic_axes)


class OnnxCharLM:
    """Runs an exported LM with ONNX Runtime behind the LM interface the encoder drives.

    ``init_hidden`` and ``forward`` take and return torch tensors, as
    :class:`~embedcache.embeddings.char_language_model.CharLanguageModel`'s do, so
    :meth:`~embedcache.embeddings.charlm.CharLMEncoder.hidden_states` runs either unchanged.

    Args:
        export: a verified export (:func:`exported_lm`).
        lm: the torch LM it was exported from (its shape gives the zero state).
        threads: ONNX Runtime's intra-op threads for this session.
    """

    def __init__(self, export: ExportedGraph, lm: CharLanguageModel, threads: int = 1) -> None:
        self.session = cpu_session(export, threads)
        self.name = f"onnx-{export.precision}"
        self.model_nbytes = export.model_path.stat().st_size
        self.state_names = _state_names(lm)
        self.state_shape = (lm.nlayers, lm.hidden_size)

    def init_hidden(self, batch_size: int) -> Hidden:
        layers, hidden = self.state_shape
        return tuple(torch.zeros(layers, batch_size, hidden) for _ in self.state_names)

    def forward(
        self, input: torch.Tensor, hidden: Hidden, decode: bool = False
    ) -> tuple[torch.Tensor, Hidden]:
        """``(chars, batch)`` ids and the carried state → ``(chars, batch, D)`` states and the new state."""
        feeds = {"ids": input.numpy()} | {n: h.numpy() for n, h in zip(self.state_names, hidden, strict=True)}
        states, *new_hidden = self.session.run(None, feeds)
        return torch.from_numpy(states), tuple(torch.from_numpy(h) for h in new_hidden)
