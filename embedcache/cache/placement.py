"""Where the store's bytes live (``gpu``, ``cpu``, ``disk``) and in which dtype, allocated exactly.

Disk format: a raw little-endian ``(n_tokens + 1, D)`` array mapped with ``torch.from_file``. Of the choices:

- ``torch.from_file`` / ``UntypedStorage.from_file`` maps the file straight into a CPU tensor of *any* torch
  dtype (bfloat16 included), writable during the build (``shared=True``: ``MAP_SHARED``) and read-only,
  copy-on-write when reused (``shared=False`` opens the file ``O_RDONLY`` and maps it ``MAP_PRIVATE``, so
  a reader can never damage a published cache). Pages are read lazily, so gathering a batch touches only its
  rows. Chosen.
- ``numpy.memmap`` does the same but has no bfloat16: bf16 would have to travel as uint16 and be
  reinterpreted, one more place to get the dtype wrong.
- safetensors maps a finished file, but writes a tensor only whole, from memory: the build could not
  stream batches into a preallocated file, which is the point of a store larger than RAM.

The file's shape and dtype live in the JSON header beside it (see :mod:`embedcache.cache.persist`).

Exactness: in-memory stores are allocated at exactly ``(n_tokens + 1) × D × itemsize`` bytes. Pinned host
memory is *registered* (``cudaHostRegister``) rather than allocated with ``pin_memory=True``, because
PyTorch's caching host allocator rounds every block up to a power of two (a 5 GiB store would pin 8 GiB).
Disk files are reserved with ``posix_fallocate`` before they are mapped: writing through a mapping into a
sparse file on a full disk kills the process with ``SIGBUS``, whereas the reservation fails up front with a
clean ``ENOSPC``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, cast, get_args

import torch

Placement = Literal["gpu", "cpu", "disk"]
PLACEMENTS: tuple[Placement, ...] = get_args(Placement)
"""In fallback order: each placement is slower and roomier than the one before."""

STORAGE_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def validate_placement(placement: object) -> Placement:
    """Return ``placement`` if it is known, else raise a ``ValueError`` listing the valid ones."""
    if placement not in PLACEMENTS:
        raise ValueError(
            f"unknown cache placement {placement!r}; valid placements are {', '.join(PLACEMENTS)}"
        )
    return placement


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """The storage dtype for a ``torch.dtype`` or its name (``"float32"``, ``"float16"``, ``"bfloat16"``)."""
    resolved = STORAGE_DTYPES.get(dtype) if isinstance(dtype, str) else dtype
    if resolved not in STORAGE_DTYPES.values():
        raise ValueError(f"unsupported cache dtype {dtype!r}; use one of {', '.join(STORAGE_DTYPES)}")
    return cast(torch.dtype, resolved)


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float16`` → ``"float16"``: the spelling used in headers and fingerprints."""
    return str(dtype).removeprefix("torch.")


def store_nbytes(n_tokens: int, dim: int, dtype: torch.dtype) -> int:
    """Exact bytes of a store: every token row plus the one zero padding row."""
    return (n_tokens + 1) * dim * dtype.itemsize


def resolve_device(embedders: Sequence[object], device: torch.device | str | None) -> torch.device:
    """The compute device: ``device`` if given, else the first embedder's, else the CPU."""
    if device is not None:
        return torch.device(device)
    for embedder in embedders:
        found = getattr(embedder, "device", None)
        if isinstance(found, torch.device):
            return found
        if isinstance(embedder, torch.nn.Module):
            parameter = next(embedder.parameters(), None)
            if parameter is not None:
                return parameter.device
    return torch.device("cpu")


def _unregister_host_memory(data_ptr: int) -> None:
    torch.cuda.cudart().cudaHostUnregister(data_ptr)


def pinned_host_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A host tensor of exactly ``shape`` page-locked with ``cudaHostRegister`` while the tensor object lives.

    The registration is dropped when this tensor object is collected, before its memory is freed.
    Views outliving it stay valid (just no longer pinned), so keep this object for as long as
    asynchronous copies may touch it.
    """
    tensor = torch.empty(shape, dtype=dtype)
    nbytes = tensor.untyped_storage().nbytes()
    if nbytes == 0:
        return tensor
    status = int(torch.cuda.cudart().cudaHostRegister(tensor.data_ptr(), nbytes, 1))  # 1: Portable
    if status != 0:
        raise RuntimeError(
            f"cudaHostRegister of {nbytes} bytes for the pinned embedding cache failed (cudaError {status}); "
            "use placement='disk' or a smaller dtype, or lower the locked-memory limit's use elsewhere"
        )
    weakref.finalize(tensor, _unregister_host_memory, tensor.data_ptr())
    return tensor


def allocate_in_memory(
    shape: tuple[int, int], dtype: torch.dtype, placement: Placement, device: torch.device
) -> torch.Tensor:
    """An uninitialised store on the compute device (``gpu``) or in host memory (``cpu``, pinned on CUDA)."""
    if placement == "gpu":
        return torch.empty(shape, dtype=dtype, device=device)
    if device.type == "cuda":
        return pinned_host_empty(shape, dtype)
    return torch.empty(shape, dtype=dtype)


def reserve_file(path: Path, nbytes: int) -> None:
    """Create ``path`` with ``nbytes`` of disk space reserved (zero-filled), failing with ENOSPC up front."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            os.posix_fallocate(fd, 0, nbytes)
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            os.ftruncate(fd, nbytes)  # a filesystem without fallocate: sparse, as good as it gets there
    finally:
        os.close(fd)


def create_mapped_file(path: Path, shape: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """A new zero-filled file of exactly the store's bytes, mapped writable (``MAP_SHARED``)."""
    reserve_file(path, shape[0] * shape[1] * dtype.itemsize)
    return torch.from_file(str(path), shared=True, size=shape[0] * shape[1], dtype=dtype).view(shape)


def open_mapped_file(path: Path, shape: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """An existing store file mapped read-only for the file (``MAP_PRIVATE``: writes never reach it)."""
    return torch.from_file(str(path), shared=False, size=shape[0] * shape[1], dtype=dtype).view(shape)


def anonymous_mapped_file(directory: Path, shape: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """A disk store with no name: the file is unlinked once mapped, so the OS frees it with the mapping."""
    path = directory / f"embedcache-{os.getpid()}-{os.urandom(6).hex()}.bin"
    try:
        return create_mapped_file(path, shape, dtype)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
