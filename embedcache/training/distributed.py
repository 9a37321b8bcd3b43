"""Training on several processes with ``torch.distributed``: one rank per process, launched by ``torchrun``.

Nothing here starts processes: ``torchrun`` (or ``embedcache train --nproc N``, which calls it) does, and sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. Each rank then

- joins the process group (``nccl`` on CUDA, ``gloo`` on CPU unless overridden) with a timeout, so that a
  rank that crashed or stalls makes the others fail with :class:`LostRankError` instead of hanging;
- trains on its own fixed, strided shard of the train split (sentences ``rank, rank + N, …``), so it embeds
  and caches only about 1/N of the corpus;
- shuffles its shard each epoch with seeds derived from ``(seed, epoch, rank)``, which needs no saved random
  state and so resumes exactly with any number of ranks;
- averages gradients through :class:`~torch.nn.parallel.DistributedDataParallel` over the tagger's trainable
  parameters only (static embedders are identical everywhere and never change).

Rank 0 alone evaluates, writes checkpoints and models, and broadcasts what the others must agree on.

Failure behaviour: with ``gloo`` a peer that dies closes its sockets and the next collective of every other
rank fails at once; a peer that is alive but stuck makes them fail after ``timeout_s``. With ``nccl`` the
timeout is enforced by PyTorch's watchdog (``TORCH_NCCL_ASYNC_ERROR_HANDLING``, on by default), which aborts
the process. Either way, rerunning the same command with ``resume=True`` continues from the last checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

Backend = Literal["auto", "nccl", "gloo"]
T = TypeVar("T")

# Long enough for rank 0's dev and test evaluations, during which the other ranks wait in a broadcast.
DEFAULT_TIMEOUT_S = 1800.0


class LostRankError(RuntimeError):
    """A collective with the other ranks failed: one crashed, was killed, or stalled past the timeout."""


@dataclass(frozen=True)
class RankInfo:
    """Where this process stands in the group (``rank 0 of 1`` when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def __str__(self) -> str:
        return f"rank {self.rank} of {self.world_size}"


def launched_by_torchrun() -> bool:
    """True when the environment names a group of more than one process (``torchrun`` sets these)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def is_main_process() -> bool:
    """Rank 0 of the group ``torchrun`` describes, or a process on its own: the one that reports results."""
    return int(os.environ.get("RANK", "0")) == 0


def torchrun_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """The command that runs ``embedcache ARGV`` on ``nproc`` local ranks under ``torch.distributed.run``.

    ``--standalone`` rendezvous on this machine; several machines need ``torchrun`` itself (see the README).
    Each rank runs this Python with the CLI's ``main``, so no console script has to be on ``PATH``.
    """
    entry = "import sys; from embedcache.cli import main; sys.exit(main())"
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "--no-python", sys.executable, "-c", entry, *argv]  # fmt: skip


def choose_backend(device: torch.device, backend: Backend = "auto") -> str:
    """``nccl`` for CUDA devices, ``gloo`` for the CPU, unless ``backend`` names one."""
    if backend not in ("auto", "nccl", "gloo"):
        raise ValueError(f"distributed_backend must be 'auto', 'nccl' or 'gloo', got {backend!r}")
    if backend != "auto":
        return backend
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(device: torch.device, local_rank: int) -> torch.device:
    """One GPU per process on a node: CUDA ranks use ``cuda:LOCAL_RANK``; CPU ranks share the CPU."""
    if device.type != "cuda":
        return device
    chosen = torch.device("cuda", local_rank)
    torch.cuda.set_device(chosen)
    return chosen


@contextlib.contextmanager
def process_group(device: torch.device, backend: Backend, timeout_s: float) -> Iterator[RankInfo]:
    """Join the group that ``torchrun`` describes for the duration of a run; alone when there is none.

    A group initialised by the caller is used as it is and left open.
    """
    if dist.is_available() and dist.is_initialized():
        yield RankInfo(dist.get_rank(), dist.get_world_size(), _local_rank(), timeout_s)
        return
    if not launched_by_torchrun():
        yield RankInfo(timeout_s=timeout_s)
        return
    dist.init_process_group(choose_backend(device, backend), timeout=timedelta(seconds=timeout_s))
    try:
        yield RankInfo(dist.get_rank(), dist.get_world_size(), _local_rank(), timeout_s)
    finally:
        dist.destroy_process_group()


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def shard_ids(n_items: int, ranks: RankInfo) -> list[int]:
    """The positions this rank trains on: ``rank, rank + N, rank + 2N, …``.

    Strided rather than contiguous so that shards differ by at most one sentence and have similar length
    profiles, and so that, in file order, step k of N ranks with batch b covers exactly the sentences of step
    k of one process with batch N·b (which makes the two runs comparable).
    """
    if n_items < ranks.world_size:
        raise ValueError(
            f"the train split has {n_items} sentences, fewer than the {ranks.world_size} ranks; "
            "use fewer processes"
        )
    return list(range(ranks.rank, n_items, ranks.world_size))


def largest_shard_size(n_items: int, world_size: int) -> int:
    return -(-n_items // world_size)


def epoch_seeds(seed: int, epoch: int, rank: int) -> tuple[int, int]:
    """Two independent seeds, for the shard's shuffle and for dropout, from ``(seed, epoch, rank)``.

    ``numpy``'s ``SeedSequence`` mixes the three numbers so that neighbouring epochs and ranks get unrelated
    streams.
    """
    shuffle_seed, dropout_seed = np.random.SeedSequence([seed, epoch, rank]).generate_state(2)
    return int(shuffle_seed), int(dropout_seed)


def wrap_for_data_parallel(
    module: torch.nn.Module, ignored_names: Sequence[str], some_unused: bool
) -> torch.nn.Module:
    """``module`` under DDP; ``ignored_names`` are neither broadcast at the start nor reduced.

    Ignore every buffer (the tagger has no running statistics; the embedders' word vectors are large and
    constant) and static parameters. ``some_unused``: some trainable parameters get no gradient (a fine-tuned
    LM's decoder), which DDP must then look for after each backward pass.
    """
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, list(ignored_names))
    return DistributedDataParallel(module, find_unused_parameters=some_unused)


def sum_across_ranks(values: Sequence[float], ranks: RankInfo) -> list[float]:
    """Elementwise sums of ``values`` over all ranks (``values`` itself when alone)."""
    if not ranks.is_distributed:
        return list(values)
    summed = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(summed)
    return summed.tolist()


def from_main(value: T, ranks: RankInfo) -> T:
    """Rank 0's ``value`` on every rank (pickled; for small objects: scores, records, a checkpoint)."""
    if not ranks.is_distributed:
        return value
    box = [value if ranks.is_main else None]
    dist.broadcast_object_list(box, src=0, device=_collective_device())
    return box[0]  # type: ignore[return-value]


def _collective_device() -> torch.device:
    return (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )


@contextlib.contextmanager
def reporting_lost_ranks(ranks: RankInfo, checkpoint_hint: str) -> Iterator[None]:
    """Turn the backend's error about a vanished peer into one that says what happened and what to do."""
    try:
        yield
    except (dist.DistError, RuntimeError) as error:
        if not ranks.is_distributed or not _is_collective_failure(error):
            raise
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise LostRankError(
            f"{ranks}: lost contact with the other ranks ({first_line}); another rank crashed, was killed or "
            f"stalled for more than {ranks.timeout_s:.0f} s (see its log). Rerun with resume=True "
            f"(embedcache train: --set training.resume=true) to continue from {checkpoint_hint}"
        ) from error


def _is_collective_failure(error: BaseException) -> bool:
    """The backends raise ``DistError``s, or plain ``RuntimeError``s from gloo's transport."""
    if isinstance(error, dist.DistError):
        return True
    text = str(error).lower()
    return any(
        sign in text for sign in ("gloo", "nccl", "connection closed", "connection reset", "timed out")
    )
