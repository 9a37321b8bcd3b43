"""The tagger trainer's settings: :class:`TrainingConfig`, the one list of them.

:meth:`~embedcache.training.Trainer.train` takes its fields as keywords (or a whole config), a recipe's
``[training]`` table takes the same keys (checked against the fields' types), ``--set training.KEY=VALUE``
too, and ``out_dir/training.json`` records every field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from embedcache.cache.placement import Placement
from embedcache.settings import StorageMode
from embedcache.training.distributed import DEFAULT_TIMEOUT_S, Backend

TrainingStorage = Literal["none", Placement]
"""Where the trainer keeps the embeddings of train and dev: ``none`` (embedded anew for every batch) or the
placement of an embedding cache built once (``gpu``, ``cpu``, ``disk``)."""


def gather_mode(storage: TrainingStorage) -> StorageMode:
    """The global :func:`~embedcache.settings.storage_mode` a run with ``storage`` sets while it embeds:
    a ``disk`` cache is written from host memory, so its vectors are gathered as for ``cpu``."""
    if storage == "disk":
        return "cpu"
    if storage == "none":
        return "none"
    return "cpu" if storage == "cpu" else "gpu"


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides how a run trains (saved in ``out_dir/training.json``).

    The loss is summed over the sentences of an optimiser step, as Flair's, so ``learning_rate`` applies to
    the gradient of the sum over the *effective batch* of ``mini_batch_size × accumulate_steps × ranks``
    sentences. ``seed`` decides the shuffling and dropout of every epoch. ``cache_int8`` builds the caches
    with int8 LMs on ONNX Runtime (CPU): faster, vectors ~1% off torch's fp32 ones. Over
    ``memory_budget_bytes``, ``on_over_budget`` fails before any LM runs (``error``) or moves the cache to
    a roomier placement (``fallback``). ``resume`` continues from ``out_dir/checkpoint.pt``; ``device``
    (``None``: CUDA when there is one) is where the tagger trains.
    """

    storage_mode: TrainingStorage = "cpu"
    max_epochs: int = 10
    mini_batch_size: int = 32  # sentences per backward pass on each rank
    accumulate_steps: int = 1  # backward passes per optimiser step
    eval_batch_size: int = 64
    learning_rate: float = 0.1
    optimizer: Literal["sgd", "adamw"] = "sgd"
    weight_decay: float = 0.0
    anneal_factor: float = 0.5
    patience: int = 3
    min_learning_rate: float = 1e-4
    clip: float | None = 5.0
    seed: int = 0
    shuffle: bool = True
    cache_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    cache_dir: str | None = None
    cache_int8: bool = False
    memory_budget_bytes: int | None = None
    on_over_budget: Literal["error", "fallback"] = "error"
    progress: bool = True
    distributed_backend: Backend = "auto"
    distributed_timeout_s: float = DEFAULT_TIMEOUT_S
    resume: bool = False
    device: str | None = None

    def __post_init__(self) -> None:
        # Paths and torch devices are accepted, and kept as text so that training.json can hold them.
        if isinstance(self.cache_dir, Path):
            object.__setattr__(self, "cache_dir", str(self.cache_dir))
        if isinstance(self.device, torch.device):
            object.__setattr__(self, "device", str(self.device))
        self._check_choices()
        self._check_numbers()

    def _check_choices(self) -> None:
        if self.storage_mode not in ("none", "cpu", "gpu", "disk"):
            raise ValueError(
                f"storage_mode must be 'none', 'cpu', 'gpu' or 'disk', got {self.storage_mode!r}"
            )
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.distributed_backend not in ("auto", "nccl", "gloo"):
            raise ValueError(
                f"distributed_backend must be 'auto', 'nccl' or 'gloo', got {self.distributed_backend!r}"
            )
        if self.cache_int8 and self.storage_mode == "none":
            raise ValueError("cache_int8 builds the embedding cache; storage_mode 'none' keeps none")

    def _check_numbers(self) -> None:
        if self.max_epochs < 1 or self.mini_batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("max_epochs, mini_batch_size and eval_batch_size must be at least 1")
        if self.accumulate_steps < 1:
            raise ValueError(f"accumulate_steps must be at least 1, got {self.accumulate_steps}")
        if self.distributed_timeout_s <= 0:
            raise ValueError(f"distributed_timeout_s must be positive, got {self.distributed_timeout_s}")
        budget = self.memory_budget_bytes
        if budget is not None and (type(budget) is not int or budget < 0):
            raise ValueError(
                f"memory_budget_bytes must be a non-negative int of bytes or unset, got {budget!r}"
            )

    def compute_device(self) -> torch.device:
        """The device to train on: ``device``, or CUDA when there is one, else the CPU."""
        if self.device is None or self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)
