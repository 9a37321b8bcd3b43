"""Torch modules exported to ONNX Runtime graphs (fp32, int8) and kept in a verified file cache.

On the CPU, ONNX Runtime's dynamically quantised kernels (``DynamicQuantizeLSTM``, ``MatMulInteger``: int8
weights, activations quantised on the fly) run embedcache's recurrent layers 2-4× faster than torch's fp32
ones, and its fp32 graphs compute what torch computes to ~1e-7. Two networks are exported this way: each
char LM (:mod:`embedcache.embeddings.onnx_lm`) and a tagger's head, re-projection → BiLSTM → emission
scores (:mod:`embedcache.models.onnx_head`). This module is what they share: the files, their checks, the
quantisation and the sessions.

On disk, in one directory (the cache, or one written by ``embedcache export``)::

    <fingerprint>-<precision>.onnx    the graph and its weights
    <fingerprint>-<precision>.json    {"format", "fingerprint", "precision", "sha256"} of that file

``fingerprint`` is a sha256 of the exported weights and options, so another network never finds this file;
``sha256`` is checked on every load, so a damaged file is found before it is run. Both files are written
under temporary names and renamed into place (:func:`embedcache.atomic.atomic_files`), the ``.json`` last:
a file without its ``.json`` is unfinished.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from embedcache.atomic import atomic_files
from embedcache.checksums import file_sha256

log = logging.getLogger(__name__)

Precision = Literal["fp32", "int8"]
INSTALL_COMMAND = "install it with: pip install 'embedcache[onnx]'"
INSTALL_HINT = f"ONNX Runtime is not installed; {INSTALL_COMMAND}"
OPSET = 17

ExportFp32 = Callable[[Path], None]
"""Writes the fp32 graph of one network to the given path (the int8 graph is quantised from it)."""


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
class ExportedGraph:
    """Where one exported network lives, and what its ``.json`` must say.

    Attributes:
        format: names the network's kind and its inputs and outputs (``embedcache.onnx-charlm/1``).
        what: the kind in words, for messages ("LM", "tagger head").
    """

    directory: Path
    fingerprint: str
    precision: Precision
    format: str
    what: str

    @property
    def model_path(self) -> Path:
        return self.directory / f"{self.fingerprint}-{self.precision}.onnx"

    @property
    def meta_path(self) -> Path:
        return self.model_path.with_suffix(".json")

    def problem(self) -> str | None:
        """Why the file on disk cannot be used (missing, unfinished, damaged, another's), or ``None``."""
        if not self.model_path.is_file():
            return f"{self.model_path}: no such file"
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            return f"{self.meta_path}: unreadable or unfinished export ({error})"
        expected = {"format": self.format, "fingerprint": self.fingerprint, "precision": self.precision}
        if not isinstance(meta, dict) or any(meta.get(key) != value for key, value in expected.items()):
            return f"{self.meta_path}: made for another {self.what} or precision (fingerprint mismatch)"
        if file_sha256(self.model_path) != meta.get("sha256"):
            return f"{self.model_path}: damaged (its sha256 differs from the one recorded at export)"
        return None


def verified_export(export: ExportedGraph, export_fp32: ExportFp32, rebuild: bool = True) -> ExportedGraph:
    """``export`` once its file is usable: as found, or (``rebuild``) written again with ``export_fp32``.

    Raises:
        OnnxBackendError: ``rebuild`` is False and the file cannot be used (the message names it).
    """
    problem = export.problem()
    if problem is None:
        return export
    if not rebuild:
        command = "embedcache export MODEL DIR --onnx" + (" --int8" if export.precision == "int8" else "")
        raise OnnxBackendError(f"{problem}; export the model again with '{command}'")
    if export.model_path.exists():
        log.warning("%s; exporting the %s again", problem, export.what)
    write_export(export, export_fp32)
    return export


def write_export(export: ExportedGraph, export_fp32: ExportFp32) -> None:
    """Write the graph (quantised for ``int8``) to ``export.model_path``, then its ``.json``.

    Raises:
        OnnxBackendError: the ``onnx`` package, which exporting needs (running does not), is missing.
    """
    import_onnxruntime()
    try:
        import onnx  # noqa: F401  (torch.onnx.export writes through it)
    except ImportError as error:
        message = f"exporting needs the onnx package, which is not installed; {INSTALL_COMMAND}"
        raise OnnxBackendError(message) from error
    with atomic_files(export.directory, last=export.meta_path.name) as staging:
        model_path = staging / export.model_path.name
        if export.precision == "fp32":
            export_fp32(model_path)
        else:
            fp32_path = staging / "fp32.onnx"  # deleted with the staging directory on a failure
            export_fp32(fp32_path)
            _quantize(fp32_path, model_path)
            fp32_path.unlink()
        meta = {"format": export.format, "fingerprint": export.fingerprint, "precision": export.precision,
                "sha256": file_sha256(model_path)}  # fmt: skip
        (staging / export.meta_path.name).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")


def export_module(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    names: tuple[Sequence[str], Sequence[str]],
    dynamic_axes: dict[str, dict[int, str]],
) -> None:
    """``torch.onnx.export`` of ``module`` (on the CPU) in eval mode (no dropout: the inference graph).

    Args:
        names: the graph's input names and output names.
    """
    if any(parameter.device.type != "cpu" for parameter in module.parameters()):
        raise OnnxBackendError("exports are made on the CPU; move the tagger there first (tagger.to('cpu'))")
    modes = [(layer, layer.training) for layer in module.modules()]  # a wrapper's mode is not its layers'
    module.eval()
    try:
        # The TorchScript exporter's deprecation and RNN-batch notes, and its C++ notes that packed
        # sequences have no shape inference (the graph takes its shapes at run time: harmless).
        with warnings.catch_warnings(), _native_stderr_silenced():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, args, str(path), input_names=list(names[0]), output_names=list(names[1]),
                dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False,
            )  # fmt: skip
    finally:
        for layer, training in modes:
            layer.training = training


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send what native code writes to file descriptor 2 to ``/dev/null`` meanwhile (Python's own errors
    still raise as exceptions)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _quantize(fp32_path: Path, int8_path: Path) -> None:
    """ONNX Runtime's dynamic quantisation: int8 weights of the recurrent layers, matrices and embeddings."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # write_export checked it is there

    # Its pre-processing hint goes through logging.warning(), which also gives the root logger a handler
    # (logging.basicConfig) when it has none: every later log line would be printed twice.
    root = logging.getLogger()
    was_disabled, handlers = root.disabled, list(root.handlers)
    root.disabled = True
    try:
        quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8)
    finally:
        root.disabled, root.handlers[:] = was_disabled, handlers


def cpu_session(export: ExportedGraph, threads: int) -> Any:
    """An ONNX Runtime session of ``export`` on the CPU with ``threads`` intra-op threads."""
    onnxruntime = import_onnxruntime()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # No arena: it keeps the largest batch's buffers for good (+290 MB peak RSS on LinES test, hidden
    # 256, batches of 64), and allocating each run's few large tensors costs nothing measurable.
    options.enable_cpu_mem_arena = False
    return onnxruntime.InferenceSession(str(export.model_path), options, providers=["CPUExecutionProvider"])
