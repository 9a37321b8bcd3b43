"""The package's one atomic writer: files and directories that appear whole or not at all.

Every write goes to a temporary name beside its target (the same file system, so the final rename is
atomic) and is renamed into place only when complete:

- :class:`AtomicFile`: a text stream, renamed over the target by :meth:`AtomicFile.commit`;
- :func:`write_atomic`: one file from bytes, a string, or a function that writes a given path (``torch.save``,
  ``safetensors``' ``save_file``, gensim);
- :func:`atomic_directory`: a directory built in a staging directory and swapped in for the target;
- :func:`atomic_files`: several files staged together and renamed into a folder one by one, a chosen file
  (the one readers open first) last.

Temporary names are ``.<target>.tmp-<pid>-<random>`` (a replaced directory is also retired as
``.<target>.old-<pid>`` where it cannot be swapped). The name carries the writer's pid, so the next writer of
the same target tells a leftover (its process is gone) from a write in progress (its process runs) and
deletes only leftovers (:func:`remove_leftovers`, run by every writer before it writes; a cache build removes
those of every target under its root, :func:`remove_all_leftovers`). A pid reused by a new process keeps a
leftover until that process ends. pids of other machines cannot be checked: do not let writers on several
hosts share one output directory.

On any failure (an exception while writing, flushing, syncing, closing or renaming: a full disk too) the
temporary is deleted and the target is left as it was. Files get the permissions an existing target had,
else those the umask gives (``mkstemp`` and safetensors make 0600 files). ``fsync=True`` flushes the data
and, after the rename, the folder to the device, so the write survives a power cut, not just a crash.

Example:
    >>> with AtomicFile("scores.json") as out:  # doctest: +SKIP
    ...     out.stream.write(text)
    ...     out.commit()
    >>> write_atomic("checkpoint.pt", lambda path: torch.save(state, path), fsync=True)  # doctest: +SKIP
    >>> with atomic_files(out_dir, last="lm.json") as staging:  # doctest: +SKIP
    ...     save_file(weights, str(staging / "lm.safetensors"))
    ...     (staging / "lm.json").write_text(config)
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO


class WriteError(OSError):
    """A file could not be written (a full disk, a quota, an I/O error); ``filename`` is the target.

    Nothing half-written is left behind: an :class:`AtomicFile` target keeps its old content.
    """


class _ErrorsNameTheTarget(io.FileIO):
    """A temporary file whose write errors name the file it stands for (its own name means nothing)."""

    def __init__(self, descriptor: int, target: Path, consequence: str) -> None:
        super().__init__(descriptor, "r+")
        self.target, self.consequence = target, consequence

    def write(self, data: Any) -> int:
        try:
            return super().write(data)
        except OSError as error:
            raise WriteError(
                error.errno, f"{error.strerror} ({self.consequence})", str(self.target)
            ) from error


def named_text_stream(descriptor: int, target: Path, consequence: str) -> TextIO:
    """A UTF-8 text stream over ``descriptor`` whose write errors are :class:`WriteError` naming ``target``.

    ``consequence`` is added to the error's message (what the failure means for ``target``).
    """
    buffered = io.BufferedRandom(_ErrorsNameTheTarget(descriptor, target, consequence))
    return io.TextIOWrapper(buffered, encoding="utf-8", newline="\n")


class AtomicFile:
    """A UTF-8 text file that appears whole or not at all: written through :attr:`stream` (seekable),
    renamed over ``path`` by :meth:`commit`.

    Leaving the ``with`` block without committing, on an exception or by choice, deletes the temporary file
    and leaves ``path`` as it was; so does a :meth:`commit` that fails. A write that fails (a full disk)
    raises :class:`WriteError` naming ``path``.

    Args:
        path: the target.
        fsync: flush the data and the folder to the device on commit.
    """

    def __init__(self, path: str | Path, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        remove_leftovers(self.path)
        descriptor, temporary = tempfile.mkstemp(prefix=temporary_prefix(self.path), dir=self.path.parent)
        self.temporary = Path(temporary)
        self.stream = named_text_stream(descriptor, self.path, "nothing was written to it")
        self.committed = False

    def __enter__(self) -> AtomicFile:
        return self

    def commit(self) -> None:
        """Close the file and rename it over ``path`` (keeping the permissions an existing file had)."""
        try:
            self.stream.flush()  # the last buffered writes: a full disk shows here at the latest
            if self.fsync:
                os.fsync(self.stream.fileno())
            self.stream.close()
            _publish_file(self.temporary, self.path, self.fsync)
        except BaseException:
            self.discard()
            raise
        self.committed = True

    def discard(self) -> None:
        """Delete the temporary file (the unwritten rest goes with it); ``path`` stays as it was."""
        with contextlib.suppress(OSError):  # a close that fails (a full disk) still releases the file
            self.stream.close()
        self.temporary.unlink(missing_ok=True)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if not self.committed:
            self.discard()


def write_atomic(path: str | Path, data: bytes | str | Callable[[Path], object], fsync: bool = False) -> Path:
    """Write ``path`` atomically from ``data``: bytes, UTF-8 text, or a function that writes the path given.

    A function is called with the temporary path (in the target's folder), e.g.
    ``lambda temporary: torch.save(state, temporary)``; what it writes there is renamed over ``path``.

    Returns:
        ``path``.
    """
    target = Path(path)
    if isinstance(data, str):
        with AtomicFile(target, fsync=fsync) as out:
            out.stream.write(data)
            out.commit()
        return target
    if isinstance(data, bytes):
        return write_atomic(target, lambda temporary: temporary.write_bytes(data), fsync)
    remove_leftovers(target)
    descriptor, name = tempfile.mkstemp(prefix=temporary_prefix(target), dir=target.parent)
    os.close(descriptor)
    temporary = Path(name)
    try:
        data(temporary)
        if fsync:
            fsync_path(temporary)
        _publish_file(temporary, target, fsync)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


@contextlib.contextmanager
def atomic_directory(path: str | Path, fsync: bool = False) -> Iterator[Path]:
    """Build a directory in the staging directory yielded, then swap it in for ``path`` whole.

    On Linux the swap is one ``renameat2(RENAME_EXCHANGE)``: a reader finds the old directory or the new
    one, never half of one and never none. Where that call is missing (other systems, some file systems) the
    old directory is first renamed away (``.<name>.old-<pid>``), leaving a moment with nothing at the path.
    The old directory is deleted after the swap. An exception in the block deletes the staging directory.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging_directory(target)
    try:
        yield staging
        _normalise_modes(staging, fsync)
        _swap_in(staging, target)
        if fsync:
            fsync_path(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_files(folder: str | Path, last: str, fsync: bool = False) -> Iterator[Path]:
    """Stage files in the directory yielded, then rename each into ``folder``, the file ``last`` last.

    ``last`` is the file readers open first (an LM's ``.json``): while it is missing or old, the set is
    unfinished. The staging directory's temporary name is that of ``last``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = _staging_directory(folder / last)
    try:
        yield staging
        _normalise_modes(staging, fsync)
        staged = sorted(staging.iterdir(), key=lambda file: file.name == last)
        for file in staged:
            _rename_into_place(file, folder / file.name)
        if fsync:
            fsync_path(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _staging_directory(target: Path) -> Path:
    remove_leftovers(target)
    return Path(tempfile.mkdtemp(prefix=temporary_prefix(target), dir=target.parent))


def _publish_file(temporary: Path, target: Path, fsync: bool) -> None:
    """Give ``temporary`` the target's permissions and rename it over ``target``."""
    os.chmod(temporary, target.stat().st_mode & 0o7777 if target.is_file() else _default_mode(False))
    _rename_into_place(temporary, target)
    if fsync:
        fsync_path(target.parent)


def _normalise_modes(staging: Path, fsync: bool) -> None:
    """The permissions the umask gives, on the staging directory and every file in it; flushed if asked."""
    os.chmod(staging, _default_mode(True))
    for file in staging.rglob("*"):
        if file.is_file() and not file.is_symlink():
            os.chmod(file, _default_mode(False))
            if fsync:
                fsync_path(file)


def _rename_into_place(source: Path, target: Path) -> None:
    """The one rename that publishes a write (one place for tests to stop a writer at)."""
    os.replace(source, target)


def _swap_in(staging: Path, target: Path) -> None:
    """Put the finished directory at ``target``; the old one is removed only after the swap."""
    if target.exists() and _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # it holds the old directory now
        return
    retired = _retire(target) if target.exists() else None
    _rename_into_place(staging, target)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def _retire(path: Path) -> Path:
    retired = path.with_name(f".{path.name}.old-{os.getpid()}")
    os.replace(path, retired)
    return retired


def remove_directory(path: Path) -> None:
    """Delete a directory so that readers find it whole or absent: renamed away first (an interrupted
    delete leaves a leftover that the next writer of ``path`` removes)."""
    shutil.rmtree(_retire(path), ignore_errors=True)


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)  # glibc >= 2.28


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths atomically (Linux ``renameat2``); False where the system cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # no such call, or not on this file system
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def fsync_path(path: Path) -> None:
    """Flush a file's data (or a folder's entries) to the device."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _default_mode(directory: bool) -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def temporary_prefix(target: Path) -> str:
    """The prefix of this process's temporary names for ``target``."""
    return f".{target.name}.tmp-{os.getpid()}-"


def remove_leftovers(target: Path) -> list[Path]:
    """Delete the temporary files and directories of ``target`` whose writing process no longer runs."""
    return _remove_dead(target.parent, rf"\.{re.escape(target.name)}\.(?:tmp|old)-(\d+)(?:-.*)?")


def remove_all_leftovers(folder: Path) -> list[Path]:
    """Delete the temporaries of every target in ``folder`` whose writing process no longer runs."""
    return _remove_dead(folder, r"\..+\.(?:tmp|old)-(\d+)(?:-.*)?")


def _remove_dead(folder: Path, names: str) -> list[Path]:
    """Delete the entries of ``folder`` named ``names`` whose group 1, a pid, is no running process."""
    pattern = re.compile(names)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = pattern.fullmatch(path.name)
        if match and not process_running(int(match.group(1))):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def process_running(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
