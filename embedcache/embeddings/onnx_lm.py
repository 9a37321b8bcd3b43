"""A character LM run by ONNX Runtime: export, int8 quantisation, a verified file cache and the runner.

On the CPU the char LMs are the whole cost of tagging, and ONNX Runtime's dynamically quantised LSTM
(``DynamicQuantizeLSTM``: int8 weights, activations quantised on the fly) runs them 2-4× faster than torch's
fp32 LSTM; its fp32 graph gives torch's states to ~1e-7.

What is exported: one LM step over a chunk, ``(ids (chars, batch), state…) → (states, state…)``: the
character embedding, the recurrent layer and the projection of
:class:`~embedcache.embeddings.char_language_model.CharLanguageModel`, with the recurrent state as input
and output so that :class:`~embedcache.embeddings.charlm.CharLMEncoder` carries it from chunk to chunk
exactly as with torch.

On disk, in one directory (the cache, or one written by ``embedcache export``)::

    <fingerprint>-<precision>.onnx    the graph and its weights
    <fingerprint>-<precision>.json    {"format", "fingerprint", "precision", "sha256"} of that file

``fingerprint`` is the encoder's :meth:`~embedcache.embeddings.charlm.CharLMEncoder.lm_fingerprint` (the
LM's weights, characters and options), so another LM never finds this file; ``sha256`` is checked on every
load, so a damaged file is found before it is run. Both files are written under temporary names and renamed
into place (:func:`embedcache.atomic.atomic_files`), the ``.json`` last: a file without its ``.json`` is
unfinished.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from embedcache.atomic import atomic_files
from embedcache.checksums import file_sha256
from embedcache.embeddings.char_language_model import CharLanguageModel, Hidden

if TYPE_CHECKING:
    from embedcache.embeddings.charlm import CharLMEncoder

log = logging.getLogger(__name__)

Precision = Literal["fp32", "int8"]
FORMAT = "embedcache.onnx-charlm/1"
INSTALL_HINT = "ONNX Runtime is not installed; install it with: pip install 'embedcache[onnx]'"
_OPSET = 17


class OnnxBackendError(RuntimeError):
    """The ONNX backend cannot run: no ONNX Runtime, a damaged or mismatched exported file, a GPU device."""


def import_onnxruntime() -> Any:
    """``onnxruntime``, or :class:`OnnxBackendError` saying in one line how to install it."""
    try:
        import onnxruntime
    except ImportError as error:
        raise OnnxBackendError(INSTALL_HINT) from error
    return onnxruntime


def default_cache_dir() -> Path:
    """``$EMBEDCACHE_ONNX_CACHE``, else ``$XDG_CACHE_HOME/embedcache/onnx`` (``~/.cache/embedcache/onnx``)."""
    if "EMBEDCACHE_ONNX_CACHE" in os.environ:
        return Path(os.environ["EMBEDCACHE_ONNX_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "embedcache" / "onnx"


@dataclass(frozen=True)
class ExportedLM:
    """Where one exported LM lives, and what its ``.json`` must say."""

    directory: Path
    fingerprint: str
    precision: Precision

    @property
    def model_path(self) -> Path:
        return self.directory / f"{self.fingerprint}-{self.precision}.onnx"

    @property
    def meta_path(self) -> Path:
        return self.model_path.with_suffix(".json")

    def problem(self) -> str | None:
        """Why the file on disk cannot be used (missing, unfinished, damaged, another LM's), or ``None``."""
        if not self.model_path.is_file():
            return f"{self.model_path}: no such file"
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            return f"{self.meta_path}: unreadable or unfinished export ({error})"
        expected = {"format": FORMAT, "fingerprint": self.fingerprint, "precision": self.precision}
        if not isinstance(meta, dict) or any(meta.get(key) != value for key, value in expected.items()):
            return f"{self.meta_path}: made for another LM or precision (fingerprint mismatch)"
        if file_sha256(self.model_path) != meta.get("sha256"):
            return f"{self.model_path}: damaged (its sha256 differs from the one recorded at export)"
        return None


def exported_lm(
    encoder: CharLMEncoder, precision: Precision, directory: Path | None = None, rebuild: bool = True
) -> ExportedLM:
    """The verified export of ``encoder``'s LM in ``directory`` (default: :func:`default_cache_dir`).

    Args:
        rebuild: export again when the file is missing, damaged or another LM's (a cache); else refuse.

    Raises:
        OnnxBackendError: ``rebuild`` is False and the file cannot be used (the message names it); the LM
            is a Flair ``LanguageModel`` (whose forward pass differs), not embedcache's own.
    """
    if not isinstance(encoder.lm, CharLanguageModel):
        raise OnnxBackendError(
            f"{encoder.name}: a Flair LanguageModel; the onnx backend exports embedcache's own LM "
            "(save the tagger and load it, or load the LM with language_model.load_language_model)"
        )
    export = ExportedLM(directory or default_cache_dir(), encoder.lm_fingerprint(), precision)
    problem = export.problem()
    if problem is None:
        return export
    if not rebuild:
        raise OnnxBackendError(f"{problem}; export the model again with 'embedcache export MODEL DIR --onnx'")
    if export.model_path.exists():
        log.warning("%s; exporting the LM again", problem)
    write_export(encoder.lm, export)
    return export


def write_export(lm: CharLanguageModel, export: ExportedLM) -> None:
    """Export ``lm`` (quantised for ``int8``) to ``export.model_path``, then write its ``.json``."""
    with atomic_files(export.directory, last=export.meta_path.name) as staging:
        model_path = staging / export.model_path.name
        if export.precision == "fp32":
            _export_fp32(lm, model_path)
        else:
            fp32_path = staging / "fp32.onnx"  # deleted with the staging directory on a failure
            _export_fp32(lm, fp32_path)
            _quantized(fp32_path, model_path)
            fp32_path.unlink()
        meta = {"format": FORMAT, "fingerprint": export.fingerprint, "precision": export.precision,
                "sha256": file_sha256(model_path)}  # fmt: skip
        (staging / export.meta_path.name).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")


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
    was_training = lm.training
    lm.eval()  # dropout off: the exported graph is the inference graph
    ids = torch.zeros(4, 2, dtype=torch.int64)  # (chars, batch): any sizes; both axes are dynamic
    state = lm.init_hidden(2)
    inputs, outputs = ["ids", *_state_names(lm)], ["states", *_state_names(lm, "_out")]
    batch_axis = {1: "batch"}
    dynamic_axes = {name: batch_axis for name in inputs[1:] + outputs[1:]}
    dynamic_axes |= {"ids": {0: "chars", 1: "batch"}, "states": {0: "chars", 1: "batch"}}
    try:
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation and RNN-batch notes
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _LMStep(lm).cpu(), (ids, *state), str(path), input_names=inputs, output_names=outputs,
                dynamic_axes=dynamic_axes, opset_version=_OPSET, dynamo=False,
            )  # fmt: skip
    finally:
        lm.train(was_training)


def _quantized(fp32_path: Path, int8_path: Path) -> Path:
    """ONNX Runtime's dynamic quantisation: int8 weights of the LSTM, projection and embedding."""
    import_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().disabled, was_disabled = True, logging.getLogger().disabled  # its pre-processing hint
    try:
        quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8)
    finally:
        logging.getLogger().disabled = was_disabled
    return int8_path


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

    def __init__(self, export: ExportedLM, lm: CharLanguageModel, threads: int = 1) -> None:
        onnxruntime = import_onnxruntime()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # No arena: it keeps the largest batch's buffers for good (+290 MB peak RSS on LinES test, hidden
        # 256, batches of 64), and allocating each run's few large tensors costs nothing measurable.
        options.enable_cpu_mem_arena = False
        self.session = onnxruntime.InferenceSession(
            str(export.model_path), options, providers=["CPUExecutionProvider"]
        )
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
