"""The one atomic writer: whole or nothing, umask permissions, and no temporary left after any failure."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

import embedcache.atomic as atomic
from embedcache.atomic import AtomicFile, WriteError, atomic_directory, atomic_files, write_atomic


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def full_disk(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def half_then_full_disk(path: Path) -> None:
    path.write_bytes(b"half")
    full_disk()


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_file_appears_whole_on_commit_and_not_at_all_otherwise(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError), AtomicFile(target) as out:
        out.stream.write("half")
        raise RuntimeError("interrupted")
    with AtomicFile(target) as out:
        out.stream.write("not committed")
    assert target.read_text(encoding="utf-8") == "old"
    with AtomicFile(target) as out:
        out.stream.write("new")
        out.commit()
    assert target.read_text(encoding="utf-8") == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.parametrize("size", [10, 100_000], ids=["fails at commit", "fails while writing"])
def test_a_full_disk_leaves_the_old_file_and_no_temporary_and_names_the_target(
    tmp_path, outputs_on_a_full_disk, size
):
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(WriteError) as raised, AtomicFile(target) as out:
        out.stream.write("x" * size)
        out.commit()
    assert (raised.value.errno, raised.value.filename) == (errno.ENOSPC, str(target))
    assert raised.value.strerror == "No space left on device (nothing was written to it)"
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_failed_commit_outside_a_with_block_leaves_no_temporary(tmp_path, outputs_on_a_full_disk):
    target = tmp_path / "out.txt"
    out = AtomicFile(target)
    out.stream.write("x")
    with pytest.raises(WriteError):
        out.commit()
    assert names(tmp_path) == []


@pytest.mark.parametrize(
    "data",
    [b"\x00bytes\xff", "text – ü\n", lambda path: path.write_bytes(b"from a function")],
    ids=["bytes", "text", "function"],
)
def test_write_atomic_writes_bytes_text_or_what_a_function_writes(tmp_path, umask_022, data):
    target = write_atomic(tmp_path / "file", data)
    expected = data if isinstance(data, bytes) else b"from a function" if callable(data) else data.encode()
    assert target.read_bytes() == expected
    assert names(tmp_path) == ["file"] and mode(target) == 0o644  # mkstemp's 0600 is not kept


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    target = tmp_path / "file"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_atomic(target, b"new", fsync=True)
    assert (target.read_bytes(), mode(target)) == (b"new", 0o640)


@pytest.mark.parametrize("fsync", [False, True])
def test_a_full_disk_in_write_atomic_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, fsync):
    target = tmp_path / "file"
    target.write_bytes(b"old")
    with pytest.raises(OSError) as raised:
        write_atomic(target, half_then_full_disk, fsync=fsync)
    assert raised.value.errno == errno.ENOSPC
    monkeypatch.setattr(atomic.os, "fsync", full_disk)  # flushing to the device fails instead
    for data in (b"new", "new", lambda path: path.write_bytes(b"new")):
        with pytest.raises(OSError):
            write_atomic(target, data, fsync=True)
    assert names(tmp_path) == ["file"] and target.read_bytes() == b"old"


def test_the_next_writer_removes_the_leftovers_of_dead_writers_only(tmp_path, dead_pid):
    target = tmp_path / "file"
    dead = [tmp_path / f".file.tmp-{dead_pid}-a", tmp_path / f".file.old-{dead_pid}"]
    live = tmp_path / f".file.tmp-{os.getpid()}-b"  # a write of this very process, in progress
    dead[0].write_bytes(b"half")
    dead[1].mkdir()
    live.write_bytes(b"half")
    write_atomic(target, b"new")
    assert names(tmp_path) == sorted(["file", live.name])


def test_a_directory_is_swapped_in_whole(tmp_path, umask_022):
    target = tmp_path / "model"
    with atomic_directory(target) as staging:
        (staging / "a").write_bytes(b"1")
    with pytest.raises(RuntimeError), atomic_directory(target) as staging:
        (staging / "a").write_bytes(b"2")
        raise RuntimeError("interrupted")
    assert names(tmp_path) == ["model"] and (target / "a").read_bytes() == b"1"
    with atomic_directory(target, fsync=True) as staging:
        (staging / "b").write_bytes(b"3")
        (staging / "b").chmod(0o600)  # as safetensors writes
    assert names(tmp_path) == ["model"] and names(target) == ["b"]
    assert (mode(target), mode(target / "b")) == (0o755, 0o644)


def test_without_renameat2_the_old_directory_is_retired_then_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_renameat2", None)
    target = tmp_path / "model"
    for content in (b"1", b"2"):
        with atomic_directory(target) as staging:
            (staging / "a").write_bytes(content)
    assert names(tmp_path) == ["model"] and (target / "a").read_bytes() == b"2"


def test_staged_files_are_renamed_in_with_the_chosen_one_last(tmp_path, monkeypatch):
    renamed: list[str] = []
    rename = atomic._rename_into_place

    def recording(source: Path, target: Path) -> None:
        renamed.append(target.name)
        rename(source, target)

    monkeypatch.setattr(atomic, "_rename_into_place", recording)
    with atomic_files(tmp_path, last="lm.json") as staging:
        for name in ("lm.json", "lm.safetensors", "lm.pt"):
            (staging / name).write_text(name)
    assert renamed[-1] == "lm.json" and sorted(renamed) == ["lm.json", "lm.pt", "lm.safetensors"]
    assert names(tmp_path) == ["lm.json", "lm.pt", "lm.safetensors"]


@pytest.mark.parametrize(
    "writer",
    [
        lambda folder, fail: _in_directory(atomic_directory(folder / "model"), fail),
        lambda folder, fail: _in_directory(atomic_files(folder / "model", last="a"), fail),
    ],
    ids=["directory", "files"],
)
def test_a_full_disk_in_a_staged_write_leaves_the_old_files_and_no_temporary(
    tmp_path: Path, writer: Callable[[Path, bool], None]
) -> None:
    writer(tmp_path, False)
    with pytest.raises(OSError) as raised:
        writer(tmp_path, True)
    assert raised.value.errno == errno.ENOSPC
    assert names(tmp_path) == ["model"] and (tmp_path / "model" / "a").read_bytes() == b"first"


def _in_directory(staged: AbstractContextManager[Path], fail: bool) -> None:
    with staged as staging:
        (staging / "a").write_bytes(b"second" if fail else b"first")
        if fail:
            half_then_full_disk(staging / "b")
