"""Tests for ``embedcache.cache.persist``: fingerprints, reuse across runs and processes, crashes, races,
corrupt files, unwritable or full directories.

Cross-process tests run ``tests/cache/cache_worker.py``, which builds with the same tiny LM as the
``encoder`` fixture, so both sides share one fingerprint: as a script under ``sys.executable`` (the
new-process read-back), and as ``multiprocessing`` processes forked from a fork server that has imported
torch and flair once (the kill and race tests), since those imports cost several seconds per process.
"""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from embedcache.cache import CacheMissError, CacheWriteError, CorruptCacheError, EmbeddingCache, integrity
from embedcache.cache.corpus_tokens import normalize_sentences
from embedcache.cache.persist import cache_fingerprint
from embedcache.data.sentence import TaggedSentence
from embedcache.embeddings.charlm import CharLMEncoder
from tests.cache import cache_worker
from tests.cache.cache_worker import CHARS_PER_BATCH, CountingEmbedder
from tests.cache.reference import pad, reference_vectors

WORKER = Path(__file__).with_name("cache_worker.py")


def build(corpus: list[TaggedSentence], embedder: object, root: Path, **options: object) -> EmbeddingCache:
    options = {"placement": "disk", "dtype": torch.float32, "chars_per_batch": CHARS_PER_BATCH, **options}
    return EmbeddingCache.build(corpus, embedder, path=root, progress=False, **options)  # type: ignore[arg-type]


def all_vectors(cache: EmbeddingCache) -> torch.Tensor:
    return cache.batch(range(len(cache)))[0]


def expected_vectors(corpus: list[TaggedSentence], encoder: CharLMEncoder) -> torch.Tensor:
    return pad(reference_vectors(corpus, [encoder], CHARS_PER_BATCH), range(len(corpus)))


def published(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]


def leftovers(root: Path) -> list[Path]:
    return list(root.glob(".*.tmp-*"))


@pytest.fixture(scope="module", autouse=True)
def fork_server() -> multiprocessing.context.ForkServerContext:
    """Workers fork from one server process that has imported ``cache_worker`` (torch, flair) once.

    The server is started with the module, so its imports run while the other tests of the module do.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.cache.cache_worker"])
    multiprocessing.forkserver.ensure_running()  # returns at once; the server imports in the background
    return context


def start_worker(
    context: multiprocessing.context.ForkServerContext, log: Path, *args: object, **options: Path
) -> multiprocessing.process.BaseProcess:
    log.touch()
    process = context.Process(target=cache_worker.run, args=args, kwargs={"log": log, **options}, daemon=True)
    process.start()
    return process


def wait_for(
    condition: Callable[[], bool],
    what: str,
    process: multiprocessing.process.BaseProcess,
    timeout: float = 90,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.exitcode is not None:
            pytest.fail(f"worker exited with {process.exitcode} before {what}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def finish(process: multiprocessing.process.BaseProcess, log: Path, out: Path) -> dict[str, object]:
    process.join(timeout=120)
    assert process.exitcode == 0, log.read_text()
    return torch.load(out, weights_only=True)


# --- fingerprint -------------------------------------------------------------------------------------------


def test_fingerprint_covers_embedders_dtype_tokens_and_spacing_but_not_tags() -> None:
    def fingerprint(
        sentences: list[object], embedders: tuple[str, ...] = ("f", "b"), dtype=torch.float16
    ) -> str:
        return cache_fingerprint(normalize_sentences(sentences), embedders, dtype)  # type: ignore[arg-type]

    base = fingerprint([TaggedSentence(["New", "York"], ["B", "I"]), TaggedSentence(["hi"])])
    assert base == fingerprint([TaggedSentence(["New", "York"], ["O", "O"]), TaggedSentence(["hi"])])
    assert base == fingerprint([["New", "York"], ["hi"]])
    changed = [
        fingerprint([["New", "York"], ["hi"]], ("b", "f")),
        fingerprint([["New", "York"], ["hi"]], ("f",)),
        fingerprint([["New", "York"], ["hi"]], dtype=torch.bfloat16),
        fingerprint([["New", "york"], ["hi"]]),
        fingerprint([["NewYork"], ["hi"]]),
        fingerprint([["New"], ["York", "hi"]]),
        fingerprint([TaggedSentence(["New", "York"], whitespace_after=[0, 1]), ["hi"]]),
        fingerprint([["New", "York"], ["hi"], []]),
    ]
    assert len({base, *changed}) == len(changed) + 1


# --- reuse -------------------------------------------------------------------------------------------------


def test_a_second_build_reuses_the_cache_without_running_the_lm(
    tmp_path: Path, small_corpus: list[TaggedSentence], encoder: CharLMEncoder
) -> None:
    first = build(small_corpus, encoder, tmp_path)
    counting = CountingEmbedder(encoder)
    second = build(small_corpus, counting, tmp_path, placement="cpu")
    assert (first.reused, second.reused, counting.batches) == (False, True, 0)
    assert second.directory == first.directory == tmp_path / first.fingerprint
    assert sorted(p.name for p in first.directory.iterdir()) == [
        "header.json",
        "sentences.npy",
        "vectors.bin",
    ]
    assert torch.equal(all_vectors(second), expected_vectors(small_corpus, encoder))
    assert torch.equal(all_vectors(first), all_vectors(second))


def test_a_new_process_reads_back_exactly_what_was_built(
    tmp_path: Path, data_dir: Path, small_corpus: list[TaggedSentence], encoder: CharLMEncoder
) -> None:
    built = build(small_corpus, encoder, tmp_path)
    command = [sys.executable, str(WORKER), str(data_dir), str(tmp_path), "40", str(tmp_path / "out.pt")]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    result = torch.load(tmp_path / "out.pt", weights_only=True)
    assert result["reused"] is True
    assert torch.equal(result["padded"], all_vectors(built))
    assert torch.equal(result["padded"], expected_vectors(small_corpus, encoder))
    assert torch.equal(result["lengths"], built.lengths)


def test_open_reads_a_cache_directory_without_embedders(
    tmp_path: Path, small_corpus: list[TaggedSentence], encoder: CharLMEncoder
) -> None:
    built = build(small_corpus, encoder, tmp_path, dtype=torch.bfloat16)
    opened = EmbeddingCache.open(built.directory, placement="cpu")
    assert (opened.fingerprint, opened.dtype, opened.nbytes) == (
        built.fingerprint,
        torch.bfloat16,
        696 * 16 * 2,
    )
    assert torch.equal(all_vectors(opened), all_vectors(built))
    with pytest.raises(CorruptCacheError, match="unreadable cache header"):
        EmbeddingCache.open(tmp_path / "no-such-cache")


def test_another_fingerprint_builds_another_cache(
    tmp_path: Path,
    small_corpus: list[TaggedSentence],
    encoder: CharLMEncoder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    half = build(small_corpus, encoder, tmp_path, dtype=torch.float16)
    with caplog.at_level(logging.INFO, logger="embedcache.cache.persist"):
        full = build(small_corpus, encoder, tmp_path, dtype=torch.float32)
    assert not full.reused and half.fingerprint != full.fingerprint
    assert f"building embedding cache {full.fingerprint}" in caplog.text
    assert sorted(published(tmp_path)) == sorted([half.directory, full.directory])


def test_without_rebuild_a_missing_cache_is_an_error_naming_what_exists(
    tmp_path: Path, small_corpus: list[TaggedSentence], encoder: CharLMEncoder
) -> None:
    existing = build(small_corpus, encoder, tmp_path)
    assert build(small_corpus, encoder, tmp_path, rebuild=False).reused
    with pytest.raises(CacheMissError) as error:
        build(small_corpus[:10], encoder, tmp_path, rebuild=False)
    assert str(tmp_path) in str(error.value) and f"caches there: {existing.fingerprint}" in str(error.value)
    assert "rebuild=True" in str(error.value)


def test_without_rebuild_nothing_is_created_or_discarded(
    tmp_path: Path, small_corpus: list[TaggedSentence], encoder: CharLMEncoder
) -> None:
    with pytest.raises(CacheMissError, match="the directory does not exist"):
        build(small_corpus, encoder, tmp_path / "absent", rebuild=False)
    assert not (tmp_path / "absent").exists()
    corrupt = build(small_corpus, encoder, tmp_path).directory
    truncate_vectors(corrupt)
    with pytest.raises(CacheMissError, match=r"the one there is corrupt: .*vectors\.bin: 44480 bytes"):
        build(small_corpus, encoder, tmp_path, rebuild=False)
    assert corrupt.is_dir()


# --- corrupt files -----------------------------------------------------------------------------------------


def truncate_vectors(directory: Path) -> None:
    path = directory / "vectors.bin"
    os.truncate(path, path.stat().st_size - 16 * 4)


def grow_vectors(directory: Path) -> None:
    with (directory / "vectors.bin").open("ab") as handle:
        handle.write(b"\0\0")


def dirty_padding_row(directory: Path) -> None:
    with (directory / "vectors.bin").open("r+b") as handle:
        handle.seek(-4, os.SEEK_END)
        handle.write(b"\1\0\0\0")


def garble_header(directory: Path) -> None:
    (directory / "header.json").write_text('{"fingerprint": ')


def edit_header(**fields: object) -> Callable[[Path], None]:
    def edit(directory: Path) -> None:
        header = json.loads((directory / "header.json").read_text())
        (directory / "header.json").write_text(json.dumps({**header, **fields}))

    return edit


def truncate_table(directory: Path) -> None:
    path = directory / "sentences.npy"
    os.truncate(path, path.stat().st_size - 8)


def swap_table(directory: Path) -> None:
    table = np.load(directory / "sentences.npy")
    np.save(directory / "sentences.npy", table[::-1].copy())


def remove_vectors(directory: Path) -> None:
    (directory / "vectors.bin").unlink()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (truncate_vectors, "44480 bytes, expected 44544"),
        (grow_vectors, "44546 bytes, expected 44544"),
        (dirty_padding_row, "padding row"),
        (remove_vectors, "cannot read the cache files"),
        (garble_header, "unreadable cache header"),
        (edit_header(version=99), "v99"),
        (edit_header(n_tokens=694), "n_tokens is 694, expected 695"),
        (edit_header(dtype="int8"), "unsupported cache dtype"),
        (truncate_table, "cannot read the cache files"),
        (swap_table, "checksum"),
        (edit_header(block_crc32=[0, 0]), "expected 1 block checksums of"),
        (edit_header(block_rows=0), "block_rows must be at least 1"),
    ],
)
def test_a_corrupt_cache_is_rebuilt_with_a_warning(
    tmp_path: Path,
    small_corpus: list[TaggedSentence],
    encoder: CharLMEncoder,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[Path], None],
    reason: str,
) -> None:
    damage(build(small_corpus, encoder, tmp_path).directory)
    with caplog.at_level(logging.WARNING, logger="embedcache.cache.persist"):
        rebuilt = build(small_corpus, encoder, tmp_path)
    assert not rebuilt.reused
    assert "discarding a corrupt embedding cache" in caplog.text and reason in caplog.text
    assert torch.equal(all_vectors(rebuilt), expected_vectors(small_corpus, encoder))
    assert build(small_corpus, encoder, tmp_path).reused
    assert leftovers(tmp_path) == []


# --- damage that keeps the size: block checksums -------------------------------------------------------


ROW_BYTES = 16 * 4  # D = 16, float32


def flip_a_bit_in_row_100(directory: Path) -> None:
    with (directory / "vectors.bin").open("r+b") as handle:
        handle.seek(100 * ROW_BYTES + 5)
        byte = handle.read(1)[0]
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte ^ 0x10]))


def write_nan_into_row_100(directory: Path) -> None:
    with (directory / "vectors.bin").open("r+b") as handle:
        handle.seek(100 * ROW_BYTES)
        handle.write(struct.pack("<f", float("nan")))


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Checksum blocks of 64 rows, so that the 696-row test store has 11 of them."""
    monkeypatch.setattr(integrity, "BLOCK_BYTES", 64 * ROW_BYTES)
    return 64


@pytest.mark.parametrize("damage", [flip_a_bit_in_row_100, write_nan_into_row_100])
def test_damage_that_keeps_the_size_is_found_when_a_store_is_read_into_memory_and_rebuilt(
    tmp_path: Path,
    small_corpus: list[TaggedSentence],
    encoder: CharLMEncoder,
    caplog: pytest.LogCaptureFixture,
    small_blocks: int,
    damage: Callable[[Path], None],
) -> None:
    directory = build(small_corpus, encoder, tmp_path).directory
    damage(directory)
    with caplog.at_level(logging.WARNING, logger="embedcache.cache.persist"):
        rebuilt = build(small_corpus, encoder, tmp_path, placement="cpu")
    assert not rebuilt.reused
    assert (
        f"{directory / 'vectors.bin'}: rows 64 to 127 differ from the checksum written with the cache"
        in caplog.text
    )
    assert torch.equal(all_vectors(rebuilt), expected_vectors(small_corpus, encoder))


@pytest.mark.parametrize("damage", [flip_a_bit_in_row_100, write_nan_into_row_100])
def test_a_mapped_store_verifies_each_block_once_at_its_first_read_and_refuses_a_damaged_one(
    tmp_path: Path,
    small_corpus: list[TaggedSentence],
    encoder: CharLMEncoder,
    monkeypatch: pytest.MonkeyPatch,
    small_blocks: int,
    damage: Callable[[Path], None],
) -> None:
    directory = build(small_corpus, encoder, tmp_path).directory
    hashed: list[int] = []
    crc32 = integrity._crc32
    monkeypatch.setattr(integrity, "_crc32", lambda rows: hashed.append(rows.shape[0]) or crc32(rows))
    reopened = build(small_corpus, encoder, tmp_path)  # disk: opening hashes nothing
    assert reopened.reused and hashed == []
    starts, lengths = reopened.store.row_starts, reopened.store.lengths
    clean = [i for i in range(len(reopened)) if starts[i] + lengths[i] <= small_blocks]  # all in block 0
    assert clean
    for _ in range(2):
        for i in clean:
            reopened.batch([i])  # one sentence: no padded cells (they would read the padding row, block 10)
    assert hashed == [64]  # block 0, once
    damage(directory)  # MAP_PRIVATE: the mapping sees the damage of pages not read yet
    hit = next(i for i in range(len(reopened)) if starts[i] <= 100 < starts[i] + lengths[i])
    with pytest.raises(CorruptCacheError) as raised:
        reopened.batch([hit])
    assert str(raised.value) == (
        f"{directory / 'vectors.bin'}: rows 64 to 127 differ from the checksum written with the cache "
        f"(damaged after it was built); delete {directory} and the next build writes it again"
    )
    reference = reference_vectors(small_corpus, [encoder], CHARS_PER_BATCH)
    assert torch.equal(reopened.batch(clean)[0], pad(reference, clean))  # the intact blocks still serve


# --- crashes and races -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_build_killed_halfway_is_never_used(
    tmp_path: Path,
    data_dir: Path,
    fork_server: multiprocessing.context.ForkServerContext,
    wnut_train: list[TaggedSentence],
    encoder: CharLMEncoder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    n = len(wnut_train)  # the whole split: 3,394 sentences, 62,730 tokens
    log = tmp_path / "worker.log"
    worker = start_worker(
        fork_server, log, data_dir, tmp_path, n, tmp_path / "out.pt", gate=tmp_path / "never"
    )
    wait_for(lambda: any(leftovers(tmp_path)) and (leftovers(tmp_path)[0] / "vectors.bin").exists(),
             "the worker to start writing", worker)  # fmt: skip
    time.sleep(0.2)  # inside the gated embedder by now: one batch written, the rest still zeros
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(timeout=30)
    assert worker.exitcode == -signal.SIGKILL
    assert published(tmp_path) == [] and len(leftovers(tmp_path)) == 1

    with caplog.at_level(logging.INFO, logger="embedcache.cache.persist"):
        cache = build(wnut_train, encoder, tmp_path)
    assert not cache.reused
    assert "left by an interrupted build" in caplog.text
    assert leftovers(tmp_path) == [] and published(tmp_path) == [cache.directory]
    assert cache.n_tokens == 62_730 and cache.nbytes == 62_731 * 16 * 4
    assert torch.equal(all_vectors(cache), expected_vectors(wnut_train, encoder))


@pytest.mark.slow
def test_two_processes_building_one_cache_build_it_once(
    tmp_path: Path,
    data_dir: Path,
    fork_server: multiprocessing.context.ForkServerContext,
    small_corpus: list[TaggedSentence],
    encoder: CharLMEncoder,
) -> None:
    gate, go = tmp_path / "gate", tmp_path / "go"
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start_worker(fork_server, first_log, data_dir, tmp_path, 40, tmp_path / "first.pt", gate=gate)
    second = start_worker(fork_server, second_log, data_dir, tmp_path, 40, tmp_path / "second.pt", start=go)
    wait_for(lambda: any(leftovers(tmp_path)), "the first worker to start building", first)
    go.touch()  # the second builds only once the first holds the lock
    wait_for(
        lambda: "waiting for it" in second_log.read_text(), "the second worker to wait on the lock", second
    )
    gate.touch()  # let the first build finish while the second waits

    first_result = finish(first, first_log, tmp_path / "first.pt")
    second_result = finish(second, second_log, tmp_path / "second.pt")
    assert (first_result["reused"], second_result["reused"]) == (False, True)
    assert torch.equal(first_result["padded"], second_result["padded"])
    assert torch.equal(second_result["padded"], expected_vectors(small_corpus, encoder))
    assert len(published(tmp_path)) == 1 and leftovers(tmp_path) == []


# --- unwritable or full cache directory --------------------------------------------------------------------


def test_an_unwritable_cache_directory_is_an_error_naming_it(
    tmp_path: Path, small_corpus: list[TaggedSentence], encoder: CharLMEncoder
) -> None:
    regular_file = tmp_path / "not-a-directory"
    regular_file.write_text("")
    root = regular_file / "cache"  # mkdir fails here even as root
    with pytest.raises(CacheWriteError) as error:
        build(small_corpus, encoder, root)
    assert f"cannot write the embedding cache under {root}" in str(error.value)
    assert "path=" in str(error.value) and "44,544 bytes" in str(error.value)


def test_a_full_disk_is_an_error_and_leaves_nothing_behind(
    tmp_path: Path,
    small_corpus: list[TaggedSentence],
    encoder: CharLMEncoder,
    full_disk: None,
) -> None:
    with pytest.raises(CacheWriteError, match="No space left on device") as error:
        build(small_corpus, encoder, tmp_path)
    assert error.value.errno == errno.ENOSPC and str(tmp_path) in str(error.value)
    assert published(tmp_path) == [] and leftovers(tmp_path) == []
