"""``embedcache predict --nproc N``: the documents split over N processes, the output joined in input order.

The command relaunches itself under ``torch.distributed.run`` (as ``train --nproc`` does). Every rank reads
the inputs once to count their documents (reading is cheap next to tagging; every rank counts the same, so
nothing needs to be sent), takes the contiguous range ``[N_docs·r/W, N_docs·(r+1)/W)`` of the documents
of all inputs, tags it into its own temporary file beside ``--output`` (an :class:`AtomicFile` that is never
committed), and sends rank 0 the byte range of each input in it. Rank 0 copies the ranges, rank after rank,
into a second temporary file and renames that over ``--output``; then every rank deletes its part.

An input that fails (unreadable, malformed, over ``--max-memory``) is left out whole, as without ``--nproc``:
a rank that meets the error reports it (one line) and the others' ranges of that input are skipped when
joining. A rank that dies makes the others' next collective fail (or ``torchrun`` stops them); the launcher
then prints one line, and removes the parts the killed ranks left (their names carry their pids, see
:mod:`embedcache.atomic`); ``--output`` is never touched.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO, TypeGuard

from embedcache.atomic import AtomicFile, remove_leftovers
from embedcache.cli.common import EXIT_BAD_INPUT, EXIT_OK, BadInput, note, one_line, resolve_model
from embedcache.cli.feedback import Feedback
from embedcache.data.conll import DataFormatError
from embedcache.data.readers import STDIN, guess_format, read_documents
from embedcache.inference.writers import pipeline_header

if TYPE_CHECKING:
    import torch

    from embedcache.inference.pipeline import Pipeline

TagInput = Callable[..., None]
"""``embedcache.cli.predict._tag_input``: tags documents ``start:stop`` of an input into a stream."""

Segment = tuple[int, int, int]
"""``(input index, start byte, end byte)`` of one input's tags in a rank's part."""

_PREFIX = "embedcache predict"


def launch(args: argparse.Namespace, sources: Sequence[str], output: Path | None) -> int:
    """Run this command on ``args.nproc`` ranks and report in one line if one of them fails.

    The ranks' stderr is held back and only this command's own lines (errors about inputs, notes, the
    summary) are passed on, so a failure reads as one line rather than torchrun's report (``--debug``
    passes everything on).
    """
    from embedcache.training.distributed import torchrun_command

    if output is None:
        raise BadInput("--nproc needs --output FILE: the processes' parts are joined into it")
    if STDIN in sources:
        raise BadInput("--nproc: stdin cannot be split between processes; pass files")
    for spec in args.model or [None]:
        resolve_model(spec)  # a wrong name fails here, once, not in every rank
    with tempfile.TemporaryFile() as log:
        code = subprocess.call(torchrun_command(args.nproc, _rank_arguments(args)), stdout=log, stderr=log)
        remove_leftovers(output)  # parts of killed ranks (their pids are gone now)
        log.seek(0)
        text = log.read().decode("utf-8", errors="replace")
    ours = text.splitlines() if args.debug else _reported_lines(text)
    if code != 0:
        if args.debug:
            print(text, file=sys.stderr, end="")
        print(f"{_PREFIX}: error: --nproc {args.nproc}: {_what_failed(text, code)}; {output} was not "
              "written (rerun with --debug for the ranks' output)", file=sys.stderr)  # fmt: skip
        return code if code != EXIT_BAD_INPUT else 1
    print("\n".join(ours), file=sys.stderr, end="\n" if ours else "")
    return EXIT_BAD_INPUT if any(line.startswith(f"{_PREFIX}: error:") for line in ours) else EXIT_OK


def _reported_lines(ranks_output: str) -> list[str]:
    """What the ranks said for the user: each warning once (every rank gives the same, e.g. auto's fallback
    to torch), then their notes and errors."""
    lines = ranks_output.splitlines()
    warnings = dict.fromkeys(line for line in lines if line.startswith("WARNING "))
    return [*warnings, *(line for line in lines if line.startswith((_PREFIX, "note:")))]


def _what_failed(torchrun_report: str, code: int) -> str:
    """The rank that failed first and how, from torchrun's report (its "Root Cause" block)."""
    root = torchrun_report.rpartition("Root Cause")[2]
    rank = re.search(r"rank\s*:\s*(\d+)", root)
    exit_code = re.search(r"exitcode\s*:\s*(-?\d+)", root)
    if rank is None or exit_code is None:
        return f"torch.distributed.run failed with exit code {code}"
    status = int(exit_code.group(1))
    how = f"was killed by signal {-status}" if status < 0 else f"failed with exit code {status}"
    return f"rank {rank.group(1)} {how}"


def _rank_arguments(args: argparse.Namespace) -> list[str]:
    """This command line for each rank, without ``--nproc``; on the CPU each rank gets a share of the
    cores (unless ``--threads`` was given)."""
    argv = ["predict", *args.inputs, f"--output={args.output}", f"--format-in={args.format_in}",
            f"--format-out={args.format_out}", f"--batch-size={args.batch_size}",
            f"--storage-mode={args.storage_mode}", f"--device={args.device}",
            f"--chunk-size={args.chunk_size}"]  # fmt: skip
    argv += [f"--model={spec}" for spec in args.model or []]
    argv += ["--quiet"] * args.quiet + ["--debug"] * args.debug
    argv += [] if args.max_memory is None else [f"--max-memory={args.max_memory}"]
    argv += [f"--backend={args.backend}"] + ["--int8"] * args.int8
    argv += [] if args.onnx_dir is None else [f"--onnx-dir={args.onnx_dir}"]
    threads = args.threads
    if threads is None and not _uses_cuda(args.device):
        threads = max(1, (os.cpu_count() or 1) // args.nproc)
    return argv + ([] if threads is None else [f"--threads={threads}"])


def _uses_cuda(device: str) -> bool:
    import torch

    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def rank_device(device: torch.device) -> torch.device:
    """``cuda:LOCAL_RANK`` for CUDA ranks (one GPU each), the CPU as it is."""
    from embedcache.training import distributed

    return distributed.rank_device(device, int(os.environ.get("LOCAL_RANK", "0")))


def run_rank(
    pipeline: Pipeline, sources: Sequence[str], output: Path | None, args: argparse.Namespace, tag: TagInput
) -> int:
    """Tag this rank's share of the documents; rank 0 joins every rank's share into ``output``.

    Returns ``0`` when the rank did its part (errors about inputs have had their line each: the launcher
    reads them); a lost peer raises.
    """
    import torch.distributed as dist

    from embedcache.training.distributed import DEFAULT_TIMEOUT_S, process_group

    if output is None or STDIN in sources:
        raise BadInput("a sharded run (torchrun) needs --output FILE and input files, not stdin")
    with process_group(pipeline.taggers[0].device, "auto", DEFAULT_TIMEOUT_S) as ranks:
        counts = _document_counts(sources, args, report=ranks.is_main)
        ranges = rank_ranges(counts, ranks.rank, ranks.world_size)
        feedback = Feedback("predict", bar=False, quiet=args.quiet or not ranks.is_main)
        with AtomicFile(output) as part:
            segments, failed = _tag_share(pipeline, sources, ranges, args, part.stream, feedback, tag)
            part.stream.flush()
            share = (str(part.temporary), segments, failed, [feedback.documents, feedback.sentences,
                                                            feedback.tokens])  # fmt: skip
            shares: list[object] = [None] * ranks.world_size
            dist.all_gather_object(shares, share)
            if ranks.is_main:
                _join(output, shares, pipeline_header(args.format_out, pipeline.names), counts, feedback)
            dist.barrier()  # every part stays until rank 0 has copied it
    return EXIT_OK


def _document_counts(sources: Sequence[str], args: argparse.Namespace, report: bool) -> list[int | None]:
    """Documents in each input (``None``: unreadable; rank 0 says why), the same on every rank."""
    counts: list[int | None] = []
    for source in sources:
        input_format = guess_format(source) if args.format_in == "auto" else args.format_in
        try:
            counts.append(sum(1 for _ in read_documents(source, input_format)))
        except (BadInput, DataFormatError, OSError) as error:
            counts.append(None)
            if report:
                _report(f"{error.filename}: {error.strerror}" if _names_a_file(error) else error)
            continue
        if counts[-1] == 0 and report:
            note(f"{source}: empty input, nothing to tag", args.quiet)
    return counts


def _names_a_file(error: Exception) -> TypeGuard[OSError]:
    """An error opening or reading an input file: reported as ``FILE: reason``, as without ``--nproc``."""
    return isinstance(error, OSError) and error.filename is not None


def rank_ranges(counts: Sequence[int | None], rank: int, world_size: int) -> list[tuple[int, int] | None]:
    """Per input, the documents ``(start, stop)`` of rank ``rank`` (``None``: none of them).

    The documents of all readable inputs, in order, are cut into ``world_size`` contiguous ranges whose
    sizes differ by at most one.
    """
    total = sum(count or 0 for count in counts)
    low, high = total * rank // world_size, total * (rank + 1) // world_size
    ranges: list[tuple[int, int] | None] = []
    base = 0
    for count in counts:
        start, stop = max(low - base, 0), min(high - base, count or 0)
        ranges.append((start, stop) if start < stop else None)
        base += count or 0
    return ranges


def _tag_share(
    pipeline: Pipeline,
    sources: Sequence[str],
    ranges: Sequence[tuple[int, int] | None],
    args: argparse.Namespace,
    stream: TextIO,
    feedback: Feedback,
    tag: TagInput,
) -> tuple[list[Segment], list[int]]:
    """Tag this rank's range of each input into ``stream``: where each input's tags lie, the failed ones."""
    segments: list[Segment] = []
    failed: list[int] = []
    for index, (source, documents) in enumerate(zip(sources, ranges, strict=True)):
        if documents is None:
            continue
        start = stream.tell()
        try:
            tag(pipeline, source, args, stream, feedback, documents)
        except (BadInput, DataFormatError, OSError) as error:
            if isinstance(error, OSError) and not _names_a_file(error):
                raise  # the output, not an input
            stream.seek(start)
            stream.truncate()
            failed.append(index)
            _report(f"{error.filename}: {error.strerror}" if _names_a_file(error) else error)
        else:
            stream.flush()
            segments.append((index, start, stream.tell()))
    return segments, failed


def _join(output: Path, shares: list, preamble: str, counts: list[int | None], feedback: Feedback) -> None:
    """Copy every rank's segments of the inputs that did not fail, in rank order, into ``output``."""
    failed = {index for _, _, rank_failed, _ in shares for index in rank_failed}
    failed |= {index for index, count in enumerate(counts) if count is None}
    with AtomicFile(output) as joined:
        joined.stream.write(preamble)
        joined.stream.flush()
        for path, segments, _, _ in shares:
            with open(path, "rb") as part:
                for index, start, end in segments:
                    if index not in failed:
                        part.seek(start)
                        _copy_bytes(part, joined.stream.buffer, end - start)
        if len(failed) < len(counts):
            joined.commit()
    if not failed:
        feedback.documents, feedback.sentences, feedback.tokens = (
            sum(share[3][i] for share in shares) for i in range(3)
        )
        feedback.summarize(str(output))


def _copy_bytes(source: BinaryIO, target: BinaryIO, n: int, chunk: int = 1 << 20) -> None:
    while n > 0:
        data = source.read(min(chunk, n))
        if not data:
            raise OSError(f"a part ended {n} bytes early")
        target.write(data)
        n -= len(data)


def _report(error: object) -> None:
    print(f"{_PREFIX}: error: {one_line(error)}", file=sys.stderr)
