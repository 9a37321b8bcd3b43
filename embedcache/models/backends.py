"""Inference backends of a loaded tagger: which runtime runs its char LMs and its head, and how they share
the threads.

``torch`` (the Python API's default) runs everything in torch. ``onnx`` runs each char LM in an ONNX
Runtime session (:mod:`embedcache.embeddings.onnx_lm`) and the tagger's head, re-projection → BiLSTM →
emission scores, in another (:mod:`embedcache.models.onnx_head`), fp32 or int8; word vectors, extraction
and the CRF's decoding stay in torch, where they cost little. With two or more threads and two LMs, the LMs
run at once, each session on its share of the threads: the forward and backward LMs are independent, and one
LSTM's small matrices use a second core poorly. The head runs after them on all the threads. ``auto`` (the
command line's default) chooses ONNX Runtime int8 on a CPU where it can, else torch.

Example:
    >>> tagger = SequenceTagger.load("en-upos", backend="onnx", int8=True)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import torch

from embedcache.embeddings.char_language_model import CharLanguageModel
from embedcache.embeddings.charlm import CharLMEncoder
from embedcache.embeddings.onnx_lm import OnnxCharLM, exported_lm
from embedcache.models.onnx_head import OnnxHead, exported_head
from embedcache.onnx_graphs import ExportedGraph, OnnxBackendError, Precision, import_onnxruntime

if TYPE_CHECKING:
    from embedcache.models.tagger import TaggerNetwork

log = logging.getLogger(__name__)

Network = TypeVar("Network", bound="TaggerNetwork")

BackendChoice = Literal["auto", "torch", "onnx"]
BACKENDS: tuple[BackendChoice, ...] = ("auto", "torch", "onnx")


def use_backend(
    tagger: Network,
    backend: BackendChoice,
    *,
    int8: bool = False,
    onnx_dir: str | Path | None = None,
    threads: int | None = None,
    concurrent_lms: bool | None = None,
    head: bool = True,
) -> Network:
    """Run ``tagger``'s char LMs and head on ``backend`` from now on, for inference; returns the tagger.

    The onnx head is an export of the weights at this call; the trainer drops it (training changes them),
    so decoding is torch's until this is called again.

    ``auto`` is the CPU default of ``embedcache predict``: ONNX Runtime int8 on the CPU where ONNX Runtime is
    installed (its measured cost: 0.03 points of UPOS accuracy on LinES test, none in WNUT-17 F1; see
    BENCHMARKS.md, ``onnx``), else torch; and torch, with a warning, when the exports cannot be made (a
    Flair LM, a cache that cannot be written).

    Args:
        int8: ``onnx`` only: the dynamically quantised LMs and head (faster, a little less exact).
        onnx_dir: a directory written by ``embedcache export``, used as it is (a missing or damaged file is
            refused); ``None``: the cache (:func:`~embedcache.onnx_graphs.default_cache_dir`), where
            exports are made on first use and made again when damaged.
        threads: CPU threads for the LMs and the head (default: torch's thread count).
        concurrent_lms: run the LMs at once (default: with two LMs or more and two threads or more).
        head: ``onnx`` only: the head too (``False``: the LMs alone, as a training cache build wants).

    Raises:
        OnnxBackendError: ``onnx`` without ONNX Runtime, on a GPU, or with an unusable exported file.
        ValueError: an unknown backend, or ``int8`` with ``torch``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return _use_default_backend(tagger, onnx_dir, threads, concurrent_lms)
    encoders = _char_lm_encoders(tagger)
    if backend == "torch":
        if int8:
            raise ValueError("int8 LMs run on the onnx backend; use backend='onnx'")
        for encoder in encoders:
            encoder.run_lm_with(None)
        tagger.embeddings.concurrent = False
        tagger.head_runner = None
        return tagger
    import_onnxruntime()
    if tagger.device.type != "cpu":
        raise OnnxBackendError(f"the onnx backend runs on the CPU; the tagger is on {tagger.device}")
    for encoder in encoders:
        if encoder.fine_tune:
            raise OnnxBackendError(f"{encoder.name}: a fine-tuned LM; it runs in torch, as it trained")
    threads = threads or torch.get_num_threads()
    concurrent = len(encoders) > 1 and threads > 1 if concurrent_lms is None else concurrent_lms
    session_threads = max(1, threads // len(encoders)) if concurrent and encoders else threads
    directory = None if onnx_dir is None else Path(onnx_dir)
    precision: Precision = "int8" if int8 else "fp32"
    for encoder in encoders:
        export = exported_lm(encoder, precision, directory, rebuild=directory is None)
        assert isinstance(encoder.lm, CharLanguageModel)  # exported_lm refuses a Flair LM
        encoder.run_lm_with(OnnxCharLM(export, encoder.lm, session_threads))
    tagger.embeddings.concurrent = concurrent
    if head:
        graph = exported_head(tagger, precision, directory, rebuild=directory is None)
        tagger.head_runner = OnnxHead(graph, threads)
    return tagger


def running_backend(tagger: TaggerNetwork) -> str:
    """What runs ``tagger`` now, in words for reports: ``torch``, ``onnx-fp32`` or ``onnx-int8``."""
    return "torch" if tagger.head_runner is None else tagger.head_runner.name


def _use_default_backend(
    tagger: Network, onnx_dir: str | Path | None, threads: int | None, concurrent_lms: bool | None
) -> Network:
    """``auto``: ONNX Runtime int8 on the CPU when it can run, else torch (see :func:`use_backend`)."""
    if tagger.device.type != "cpu" or not _onnxruntime_installed():
        return use_backend(tagger, "torch")
    try:
        return use_backend(
            tagger, "onnx", int8=True, onnx_dir=onnx_dir, threads=threads, concurrent_lms=concurrent_lms
        )
    except (OnnxBackendError, OSError) as error:
        if onnx_dir is not None:  # exports the user made and named: theirs to fix, not to work around
            raise
        log.warning("running the model in torch, not ONNX Runtime int8: %s", error)
        return use_backend(tagger, "torch")


def _onnxruntime_installed() -> bool:
    try:
        import_onnxruntime()
    except OnnxBackendError:
        return False
    return True


def export_graphs(tagger: TaggerNetwork, directory: str | Path, int8: bool = False) -> list[ExportedGraph]:
    """Export ``tagger``'s char LMs and head to ``directory`` for ``use_backend(..., onnx_dir=directory)``.

    Graphs already exported there, intact, are kept; damaged ones are written again.
    """
    import_onnxruntime()
    precision: Precision = "int8" if int8 else "fp32"
    lms = [exported_lm(encoder, precision, Path(directory)) for encoder in _char_lm_encoders(tagger)]
    return [*lms, exported_head(tagger, precision, Path(directory))]


def _char_lm_encoders(tagger: TaggerNetwork) -> list[CharLMEncoder]:
    """The tagger's char LM encoders, also those inside Flair faces (``CharLMEmbeddings.encoder``)."""
    cores = (getattr(e, "encoder", e) for e in tagger.embeddings.embedders)
    return [core for core in cores if isinstance(core, CharLMEncoder)]
