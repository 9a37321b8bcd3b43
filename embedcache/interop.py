"""Glue for Flair's own training loop: make the global storage mode follow ``embeddings_storage_mode``.

Example:
    >>> from flair.trainers import ModelTrainer
    >>> trainer = ModelTrainer(tagger, corpus)  # doctest: +SKIP
    >>> trainer.train("out", embeddings_storage_mode="gpu", plugins=[StorageModePlugin()])  # doctest: +SKIP

Flair then keeps exactly ``n_tokens × D`` elements per ``CharLMEmbeddings`` instead of whole LM states.
"""

from __future__ import annotations

from typing import Any

from flair.trainers.plugins.base import TrainerPlugin

from embedcache.settings import storage_mode


class StorageModePlugin(TrainerPlugin):
    """Sets :func:`embedcache.storage_mode` to the trainer's ``embeddings_storage_mode`` while it trains.

    The mode is entered on the trainer's own exit stack, so it is restored when training ends, normally or
    by an exception.
    """

    @TrainerPlugin.hook
    def after_setup(self, embeddings_storage_mode: str = "cpu", **_: Any) -> None:
        # Flair passes the mode as a plain str; storage_mode validates it.
        self.trainer.context_stack.enter_context(storage_mode(embeddings_storage_mode))  # type: ignore[arg-type]
