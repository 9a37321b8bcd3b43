"""The tagger as users drive it: the network of :mod:`embedcache.models.tagger` plus predict, save, load.

The methods delegate to functions of the layers below; the imports inside them are deferred only to keep
``import embedcache`` cheap (Flair, ONNX Runtime and safetensors load on first use), never to hide a cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from embedcache.models.tagger import TaggerNetwork
from embedcache.settings import StorageMode

if TYPE_CHECKING:
    from pathlib import Path

    from flair.models import SequenceTagger as FlairSequenceTagger

    from embedcache.inference.predict import PredictInput, Prediction
    from embedcache.models.backends import BackendChoice


class SequenceTagger(TaggerNetwork):
    """A BiLSTM-CRF tagger over embedcache (or Flair-face) token embedders.

    Args:
        embeddings: one embedder, a list (concatenated in order) or an :class:`EmbeddingStack`.
        tag_dictionary: the tags, as a :class:`TagDictionary`, a ``flair.data.Dictionary`` or a list.
        tag_type: the label name (``"ner"``, ``"upos"``); Flair sentences get labels of this type.
        hidden_size, rnn_layers, use_rnn, use_crf, reproject_embeddings, dropout, word_dropout,
            locked_dropout: as in Flair's ``SequenceTagger``.
        decoding: how confidences and spans are read (see :data:`~embedcache.models.tagger.Decoding`).

    The network is :class:`~embedcache.models.tagger.TaggerNetwork`'s; this class adds what users do with it,
    each delegated to the module that does it: :meth:`predict` (:mod:`embedcache.inference.predict`),
    :meth:`save` and :meth:`load` (:mod:`embedcache.models.serialization`), :meth:`from_flair`
    (:mod:`embedcache.models.flair_conversion`). Those modules import the network, never this class, so
    imports run one way.

    Example:
        >>> tags = TagDictionary(["O", "B-PER", "I-PER"])
        >>> tagger = SequenceTagger([fwd, bwd], tags, "ner")  # doctest: +SKIP
        >>> tagger.predict(["George Washington went to Washington."])  # doctest: +SKIP
    """

    def predict(
        self,
        inputs: PredictInput,
        batch_size: int = 32,
        storage_mode: StorageMode = "none",
        device: str | torch.device | None = None,
        progress: bool = False,
        memory_budget_bytes: int | None = None,
        label_name: str | None = None,
    ) -> list[Prediction]:
        """Tag raw strings, token lists or Flair sentences; see :func:`embedcache.inference.predict.predict`.

        Flair sentences are labelled as Flair labels them, replacing earlier labels of ``label_name``
        (default: the tag type).
        """
        from embedcache.inference.predict import predict

        return predict(
            self, inputs, batch_size, storage_mode, device, progress, memory_budget_bytes, label_name
        )

    def save(self, path: str | Path, half: bool = False) -> None:
        """Write a model directory of safetensors + JSON (``half``: weights stored as float16); see
        :mod:`embedcache.models.serialization`."""
        from embedcache.models.serialization import save_tagger

        save_tagger(self, path, half=half)

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        backend: BackendChoice = "torch",
        int8: bool = False,
        onnx_dir: str | Path | None = None,
    ) -> SequenceTagger:
        """Load a model directory written by :meth:`save`, or a bundled model by name (never unpickles).

        ``backend="onnx"`` runs the char LMs and the head in ONNX Runtime (``int8``: quantised), exported
        on first use to a cache or read from ``onnx_dir``; ``"auto"`` (the command line's default) runs them
        in ONNX Runtime int8 on the CPU where it is installed, else in torch; see
        :func:`embedcache.models.backends.use_backend`.

        Example:
            >>> tagger = SequenceTagger.load("en-upos")  # doctest: +SKIP
            >>> fast = SequenceTagger.load("en-upos", backend="onnx", int8=True)  # doctest: +SKIP
        """
        from embedcache.models.serialization import load_tagger

        tagger = load_tagger(path, cls, device=device)
        if backend == "torch" and not int8:
            return tagger
        from embedcache.models.backends import use_backend

        return use_backend(tagger, backend, int8=int8, onnx_dir=onnx_dir)

    @classmethod
    def from_flair(cls, flair_tagger: FlairSequenceTagger) -> SequenceTagger:
        """The embedcache tagger of a trained ``flair.models.SequenceTagger``; it predicts what Flair does.

        See :mod:`embedcache.models.flair_conversion` (and ``embedcache convert`` for ``.pt`` files).

        Example:
            >>> flair_tagger = flair.models.SequenceTagger.load("ner.pt")  # doctest: +SKIP
            >>> tagger = SequenceTagger.from_flair(flair_tagger)  # doctest: +SKIP
        """
        from embedcache.models.flair_conversion import tagger_from_flair

        return tagger_from_flair(flair_tagger, cls)
