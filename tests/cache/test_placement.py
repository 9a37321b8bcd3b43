"""Tests for ``embedcache.cache.placement``: dtypes, exact sizes, mapped files, pinned host memory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from embedcache.cache.placement import (
    anonymous_mapped_file,
    create_mapped_file,
    open_mapped_file,
    pinned_host_empty,
    resolve_device,
    resolve_dtype,
    store_nbytes,
    validate_placement,
)
from embedcache.embeddings.charlm import CharLMEncoder


@pytest.mark.parametrize(
    ("given", "expected"),
    [("float32", torch.float32), ("float16", torch.float16), (torch.bfloat16, torch.bfloat16)],
)
def test_storage_dtypes_by_name_or_dtype(given: object, expected: torch.dtype) -> None:
    assert resolve_dtype(given) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["fp16", torch.int8, torch.float64])
def test_other_dtypes_are_refused_with_the_valid_ones(bad: object) -> None:
    with pytest.raises(ValueError, match="float32, float16, bfloat16"):
        resolve_dtype(bad)  # type: ignore[arg-type]


def test_unknown_placement_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="gpu, cpu, disk"):
        validate_placement("ssd")


def test_store_bytes_count_the_padding_row() -> None:
    assert store_nbytes(10, 4, torch.float32) == 11 * 4 * 4
    assert store_nbytes(10, 4, torch.bfloat16) == 11 * 4 * 2
    assert store_nbytes(0, 4, torch.float16) == 8


def test_device_comes_from_the_first_embedder(encoder: CharLMEncoder) -> None:
    assert resolve_device([encoder], None) == torch.device("cpu")
    assert resolve_device([object()], None) == torch.device("cpu")
    assert resolve_device([encoder], "meta") == torch.device("meta")


def test_mapped_file_is_exactly_the_store_and_zero_filled(tmp_path: Path) -> None:
    path = tmp_path / "vectors.bin"
    mapped = create_mapped_file(path, (5, 3), torch.bfloat16)
    assert path.stat().st_size == 5 * 3 * 2
    assert mapped.untyped_storage().nbytes() == 5 * 3 * 2
    assert not mapped.any()
    mapped[1] = 1.5
    del mapped
    assert open_mapped_file(path, (5, 3), torch.bfloat16)[1].tolist() == [1.5, 1.5, 1.5]


def test_a_reader_never_writes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "vectors.bin"
    create_mapped_file(path, (2, 2), torch.float32)  # zeros, unmapped at once
    reader = open_mapped_file(path, (2, 2), torch.float32)
    reader.fill_(7.0)  # private copy-on-write pages
    assert path.read_bytes() == bytes(16)


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "vectors.bin").write_bytes(b"taken")
    with pytest.raises(FileExistsError):
        create_mapped_file(tmp_path / "vectors.bin", (2, 2), torch.float32)


def test_a_full_disk_fails_before_mapping(tmp_path: Path, full_disk: None) -> None:
    with pytest.raises(OSError, match="No space left"):
        create_mapped_file(tmp_path / "vectors.bin", (4, 4), torch.float16)


def test_anonymous_file_leaves_no_name_behind(tmp_path: Path) -> None:
    store = anonymous_mapped_file(tmp_path, (3, 2), torch.float16)
    assert list(tmp_path.iterdir()) == []
    store[0] = 2.0
    assert store.sum().item() == 4.0
    assert store.untyped_storage().nbytes() == 3 * 2 * 2


@pytest.mark.cuda
def test_pinned_host_memory_is_exact_and_page_locked() -> None:
    pinned = pinned_host_empty((1000, 3), torch.float16)
    assert pinned.is_pinned()
    assert pinned.untyped_storage().nbytes() == 1000 * 3 * 2
