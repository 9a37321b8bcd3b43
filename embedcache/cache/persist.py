"""Persistent caches: fingerprint, directory layout, validation, and a crash- and race-safe publish.

Layout under the cache root (the ``path`` given to ``EmbeddingCache.build``)::

    <root>/<fingerprint>/header.json    format, version, fingerprint, n_sentences, n_tokens, dim, dtype,
                                        sha256 of the sentence table, rows per block and the CRC-32 of
                                        each block of vectors.bin (see integrity.py)
    <root>/<fingerprint>/vectors.bin    raw (n_tokens + 1, D) array, last row zero (see placement.py)
    <root>/<fingerprint>/sentences.npy  (n_sentences, 2) int64: first row and length of each sentence
    <root>/.<fingerprint>.lock          flock'd while a process checks or builds that cache (kept)
    <root>/.<fingerprint>.tmp-<pid>-*   a build in progress, or the leftovers of a killed one

The fingerprint covers everything that defines the vectors: each embedder's ``fingerprint()`` in order,
the storage dtype, and the corpus as the LM reads it (token strings and spaces after them). It leaves out
the batch plan (``chars_per_batch``) and the compute device, which change float rounding only, and tags.

Mismatch policy: a different fingerprint names a different directory, so a changed model, dtype or corpus
never reads a stale cache. When no valid cache exists for the fingerprint, it is built (logged at INFO),
or, with ``rebuild=False``, :class:`CacheMissError` lists the caches that do exist there. Caches of other
fingerprints are left alone (another run may still use them); delete old ones by hand.

Safety: a cache is built in a temporary directory, flushed (``fsync``), and published with one atomic rename
(:func:`embedcache.atomic.atomic_directory`), so a directory named by a fingerprint is complete or absent; a
killed build leaves only a ``.<fingerprint>.tmp-*`` directory, which the next build under that root removes.
Builders of one fingerprint take an exclusive ``fcntl.flock`` on its lock file, so a second process waits,
then finds and reuses the first one's cache. A published cache is read without the lock (publication is
atomic), so a read-only cache directory can be shared. On every open the header, the file sizes, the sentence
table (checksum, bounds) and the zero padding row are checked, and a store read into memory (``verify_now``)
is checked against its block checksums; a failing cache is discarded with a warning and rebuilt. A mapped
(``disk``) store is not hashed at open, which would defeat the memory map: each block is verified the first
time a batch reads it, and a damaged one raises :class:`CorruptCacheError` naming the file and rows. ``flock``
makes this module POSIX-only, and on network filesystems it is only as reliable as their lock support.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import torch

from embedcache.atomic import atomic_directory, remove_all_leftovers, remove_directory
from embedcache.cache.corpus_tokens import CorpusTokens
from embedcache.cache.integrity import BlockVerifier, CorruptCacheError, block_checksums, rows_per_block
from embedcache.cache.placement import (
    create_mapped_file,
    dtype_name,
    open_mapped_file,
    resolve_dtype,
    store_nbytes,
)

logger = logging.getLogger(__name__)

FORMAT_NAME = "embedcache.EmbeddingCache"
FORMAT_VERSION = 2  # 2: block checksums of vectors.bin in the header
HEADER_FILE = "header.json"
VECTORS_FILE = "vectors.bin"
SENTENCES_FILE = "sentences.npy"
_IDENTITY_FIELDS = ("fingerprint", "n_sentences", "n_tokens", "dim", "dtype")


class CacheMissError(LookupError):
    """No valid cache with the wanted fingerprint exists, and rebuilding was not allowed."""


class CacheWriteError(OSError):
    """The cache cannot be written (read-only or missing directory, disk full); the message says where."""


def cache_fingerprint(corpus: CorpusTokens, embedder_fingerprints: Sequence[str], dtype: torch.dtype) -> str:
    """sha256 over the embedders' fingerprints, the storage dtype, and every token and space of the corpus."""
    digest = hashlib.sha256(f"{FORMAT_NAME}/{FORMAT_VERSION}".encode())
    identity = {"embedders": list(embedder_fingerprints), "dtype": dtype_name(dtype), "n": corpus.n_sentences}
    digest.update(json.dumps(identity).encode())
    for counts in (corpus.lengths, corpus.token_char_lengths(), corpus.flat_whitespace()):
        digest.update(counts.astype("<i8").tobytes())
    digest.update("".join(chain.from_iterable(corpus.tokens)).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def table_sha256(table: np.ndarray) -> str:
    """sha256 of a sentence table's little-endian int64 bytes."""
    return hashlib.sha256(np.ascontiguousarray(table, dtype="<i8").tobytes()).hexdigest()


@dataclass(frozen=True)
class CacheHeader:
    """The JSON header beside the data: enough to check the files and map the vectors."""

    fingerprint: str
    n_sentences: int
    n_tokens: int
    dim: int
    dtype: str
    sentences_sha256: str = ""
    block_rows: int = 0
    block_crc32: tuple[int, ...] = ()
    format: str = FORMAT_NAME
    version: int = FORMAT_VERSION

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_tokens + 1, self.dim)

    @property
    def torch_dtype(self) -> torch.dtype:
        return resolve_dtype(self.dtype)

    @property
    def data_bytes(self) -> int:
        return store_nbytes(self.n_tokens, self.dim, self.torch_dtype)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, path: Path) -> CacheHeader:
        """Parse and type-check a header file; any problem is a :class:`CorruptCacheError`."""
        try:
            fields = json.loads(path.read_text(encoding="utf-8"))
            header = cls(**fields)
            if header.format != FORMAT_NAME or header.version != FORMAT_VERSION:
                raise ValueError(
                    f"format {header.format!r} v{header.version}, expected {FORMAT_NAME!r} v{FORMAT_VERSION}"
                )
            for name in ("n_sentences", "n_tokens", "dim", "version", "block_rows"):
                if type(getattr(header, name)) is not int or getattr(header, name) < 0:
                    raise ValueError(f"{name} must be a non-negative int, got {getattr(header, name)!r}")
            header.torch_dtype  # noqa: B018 - validates the dtype name
            header = dataclasses.replace(header, block_crc32=_checked_checksums(header))
        except (OSError, ValueError, TypeError) as error:
            raise CorruptCacheError(f"{path}: unreadable cache header ({error})") from error
        return header


def _checked_checksums(header: CacheHeader) -> tuple[int, ...]:
    """The header's block checksums, one 32-bit int per block of ``block_rows`` rows."""
    checksums = header.block_crc32
    if header.block_rows < 1:
        raise ValueError(f"block_rows must be at least 1, got {header.block_rows}")
    blocks = -(-(header.n_tokens + 1) // header.block_rows)
    if not isinstance(checksums, (list, tuple)) or len(checksums) != blocks:
        raise ValueError(f"expected {blocks} block checksums of {header.block_rows} rows each")
    if not all(type(value) is int and 0 <= value < 2**32 for value in checksums):
        raise ValueError("block checksums must be 32-bit unsigned ints")
    return tuple(checksums)


@dataclass(frozen=True)
class CachedFiles:
    """A validated cache directory: its header, sentence table and read-only mapped vectors.

    ``verifier`` checks blocks of ``vectors`` as they are first read; ``None`` when every block is known
    good (verified at open, or just written).
    """

    directory: Path
    header: CacheHeader
    table: np.ndarray  # (n_sentences, 2) int64 [first row, length]
    vectors: torch.Tensor  # (n_tokens + 1, D), mapped MAP_PRIVATE
    verifier: BlockVerifier | None


def _check_table(path: Path, table: np.ndarray, header: CacheHeader) -> None:
    if table.dtype != np.int64 or table.shape != (header.n_sentences, 2):
        raise CorruptCacheError(
            f"{path}: sentence table is {table.dtype} {table.shape}, expected int64 ({header.n_sentences}, 2)"
        )
    if table_sha256(table) != header.sentences_sha256:
        raise CorruptCacheError(f"{path}: sentence table checksum differs from the header's")
    starts, lengths = table[:, 0], table[:, 1]
    if (starts < 0).any() or (lengths < 0).any() or (starts + lengths > header.n_tokens).any():
        raise CorruptCacheError(f"{path}: sentence rows fall outside the {header.n_tokens} stored tokens")
    if int(lengths.sum()) != header.n_tokens:
        raise CorruptCacheError(
            f"{path}: sentence lengths sum to {lengths.sum()}, header says {header.n_tokens}"
        )


def _check_vectors_file(path: Path, header: CacheHeader) -> None:
    size = path.stat().st_size
    if size != header.data_bytes:
        raise CorruptCacheError(
            f"{path}: {size} bytes, expected {header.data_bytes} = ({header.n_tokens} + 1) x {header.dim} "
            f"x {header.torch_dtype.itemsize} ({header.dtype})"
        )
    row_bytes = header.dim * header.torch_dtype.itemsize
    with path.open("rb") as handle:
        handle.seek(size - row_bytes)
        if any(handle.read(row_bytes)):
            raise CorruptCacheError(f"{path}: the padding row (last row) is not zero")


def open_cache(directory: Path, expected: CacheHeader | None = None, verify_now: bool = False) -> CachedFiles:
    """Validate a cache directory and map its vectors read-only.

    Args:
        directory: a ``<root>/<fingerprint>`` directory.
        expected: when given, its fingerprint, counts, dim and dtype must match the header's.
        verify_now: check every block against its checksum now (the caller reads the whole store anyway),
            instead of each block the first time it is read.

    Raises:
        CorruptCacheError: a file is missing, unreadable, of the wrong size or inconsistent.
    """
    header = CacheHeader.read(directory / HEADER_FILE)
    if expected is not None:
        for name in _IDENTITY_FIELDS:
            if getattr(header, name) != getattr(expected, name):
                raise CorruptCacheError(
                    f"{directory / HEADER_FILE}: {name} is {getattr(header, name)!r}, "
                    f"expected {getattr(expected, name)!r}"
                )
    vectors_path, table_path = directory / VECTORS_FILE, directory / SENTENCES_FILE
    try:
        _check_vectors_file(vectors_path, header)
        table = np.load(table_path, allow_pickle=False)
        _check_table(table_path, table, header)
        vectors = open_mapped_file(vectors_path, header.shape, header.torch_dtype)
        verifier = BlockVerifier(vectors_path, vectors, header.block_rows, header.block_crc32)
        if verify_now:
            verifier.verify_all()
    except (OSError, ValueError, EOFError, RuntimeError) as error:
        if isinstance(error, CorruptCacheError):
            raise
        raise CorruptCacheError(f"{directory}: cannot read the cache files ({error})") from error
    return CachedFiles(directory, header, table, vectors, None if verify_now else verifier)


@contextlib.contextmanager
def build_lock(root: Path, fingerprint: str) -> Iterator[None]:
    """Hold the exclusive lock of one fingerprint's cache; a second process blocks here until it is free."""
    with (root / f".{fingerprint}.lock").open("a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("another process is building the embedding cache %s; waiting for it", fingerprint)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(root: Path) -> None:
    for leftover in remove_all_leftovers(root):  # of every fingerprint: their builders are gone
        logger.info("removed %s, left by an interrupted build", leftover)


def _write_and_publish(
    root: Path, header: CacheHeader, table: np.ndarray, fill: Callable[[torch.Tensor], None]
) -> None:
    with atomic_directory(root / header.fingerprint, fsync=True) as temporary:
        vectors = create_mapped_file(temporary / VECTORS_FILE, header.shape, header.torch_dtype)
        fill(vectors)
        block_rows = rows_per_block(header.dim * header.torch_dtype.itemsize)
        header = dataclasses.replace(
            header, block_rows=block_rows, block_crc32=tuple(block_checksums(vectors, block_rows))
        )
        del vectors  # unmap: every row is now in the page cache
        np.save(temporary / SENTENCES_FILE, table)
        (temporary / HEADER_FILE).write_text(header.to_json(), encoding="utf-8")


def cache_write_error(
    root: Path,
    error: OSError,
    nbytes: int,
    remedy: str = "Pass path= a writable directory with free space, or path=None to keep the cache in memory",
) -> CacheWriteError:
    """A :class:`CacheWriteError` naming the directory, the failing file and the bytes needed."""
    where = error.filename or root
    wrapped = CacheWriteError(
        f"cannot write the embedding cache under {root} ({where}: {error.strerror or error}); it needs "
        f"{nbytes:,} bytes. {remedy}"
    )
    wrapped.errno = error.errno
    return wrapped


def _cache_miss(root: Path, expected: CacheHeader, reason: str) -> CacheMissError:
    return CacheMissError(
        f"no valid embedding cache with fingerprint {expected.fingerprint} under {root} ({reason}); the "
        "embedders, dtype or corpus differ from those of any cache built there. Pass rebuild=True to build it"
    )


def load_or_build(
    root: Path,
    expected: CacheHeader,
    table: np.ndarray,
    fill: Callable[[torch.Tensor], None],
    rebuild: bool = True,
    verify_now: bool = False,
) -> tuple[CachedFiles, bool]:
    """Open the cache of ``expected.fingerprint`` under ``root``, building it first if needed.

    Args:
        root: the cache root directory (created if missing).
        expected: the header of the cache to build; reuse requires its identity fields to match.
        table: ``(n_sentences, 2)`` sentence table for a new build.
        fill: writes all rows (padding row included) into the mapped ``(n_tokens + 1, D)`` file.
        rebuild: build when no valid cache exists; if False, raise :class:`CacheMissError` instead.
        verify_now: verify an existing cache's block checksums at open (see :func:`open_cache`); a cache
            this call builds is not verified again.

    Returns:
        The opened cache, and whether this call built it.
    """
    published = root / expected.fingerprint
    with contextlib.suppress(CorruptCacheError):
        if published.is_dir():
            return open_cache(published, expected, verify_now), False  # atomic publish: no lock to read
    if not rebuild and not root.is_dir():
        raise _cache_miss(root, expected, "the directory does not exist")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with build_lock(root, expected.fingerprint):  # waits for a build of this cache in progress
            if published.exists():
                try:
                    return open_cache(published, expected, verify_now), False
                except CorruptCacheError as error:
                    if not rebuild:
                        raise _cache_miss(root, expected, f"the one there is corrupt: {error}") from error
                    logger.warning("discarding a corrupt embedding cache, rebuilding it: %s", error)
                    remove_directory(published)
            if not rebuild:
                others = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
                raise _cache_miss(root, expected, f"caches there: {', '.join(others) or 'none'}")
            logger.info("building embedding cache %s under %s", expected.fingerprint, root)
            _remove_leftovers(root)
            header = dataclasses.replace(expected, sentences_sha256=table_sha256(table))
            _write_and_publish(root, header, table, fill)
            fresh = open_cache(published, header)
            return dataclasses.replace(fresh, verifier=None), True  # checksummed from these very bytes
    except CacheWriteError:
        raise
    except OSError as error:
        raise cache_write_error(root, error, expected.data_bytes) from error
