"""A :class:`Pipeline`: several taggers that share their identical embedders, tagging text together.

How the embedders are shared and the batch embedded once is :mod:`embedcache.inference.tagger_group`'s;
the tagging is the same driver as one tagger's, :func:`embedcache.inference.predict.predict_many`.

Example:
    >>> pos, ner = SequenceTagger.load("en-upos"), SequenceTagger.load("out/ner/best-model")  # doctest: +SKIP
    >>> pipeline = Pipeline([pos, ner])  # doctest: +SKIP
    >>> [(upos, ner)] = pipeline.predict(["George Washington went to Washington."])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from embedcache.inference.predict import Prediction, predict_many
from embedcache.inference.tagger_group import TaggerGroup
from embedcache.settings import StorageMode

if TYPE_CHECKING:
    from embedcache.inference.predict import PredictInput


class Pipeline(TaggerGroup):
    """Taggers that share their identical embedders; tags come back one set per tagger.

    Built as a :class:`TaggerGroup` (its arguments and errors); this class adds :meth:`predict`.
    """

    def predict(
        self,
        inputs: PredictInput,
        batch_size: int = 32,
        storage_mode: StorageMode = "none",
        device: str | torch.device | None = None,
        progress: bool = False,
        memory_budget_bytes: int | None = None,
    ) -> list[tuple[Prediction, ...]]:
        """Tag every input with every tagger: one tuple of predictions (in tagger order) per input.

        The same driver as :meth:`SequenceTagger.predict` (sorting, batching, out-of-memory halving, the
        memory budget); Flair sentences get one label type per tagger (its tag type).
        """
        return predict_many(self, inputs, batch_size, storage_mode, device, progress, memory_budget_bytes)
