"""``embedcache profile``: embed a corpus slice in each storage mode; time, peak RSS, retained bytes.

For each mode the character LMs embed the same sentences batch by batch, and the token vectors are kept as a
trainer keeps them: dropped after each batch in ``none``, kept to the end in ``cpu`` and ``gpu``. Then
:func:`embedcache.accounting.retained_nbytes` counts the bytes the kept vectors hold on to: exactly
``n_tokens × D × 4`` when the storage rule holds, and 0 in ``none``.

Peak RSS is measured per mode where a process can reset its peak (Linux, ``/proc/self/clear_refs``);
elsewhere it is the peak of the whole process so far, and the output says so.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from itertools import islice
from typing import TYPE_CHECKING

from embedcache.cli.common import (
    EXIT_OK,
    BadInput,
    describe_weight_bytes,
    load_pipeline,
    positive_int,
    resolve_device,
)
from embedcache.data.readers import guess_format, read_documents
from embedcache.settings import STORAGE_MODES, StorageMode

if TYPE_CHECKING:
    from embedcache.data.sentence import TaggedSentence
    from embedcache.embeddings.charlm import CharLMEncoder

EPILOG = """\
examples:
  embedcache profile --data wnut17 --sentences 500 --hidden 256       # random forward + backward LMs
  embedcache profile --data ud_english_lines --model out/lines-upos/best-model
  embedcache profile --data test.conll --modes cpu,gpu --json
  embedcache profile --model en-upos --model NER_DIR      # the LMs the two share, profiled once

--data is wnut17 or ud_english_lines (the train split, from $EMBEDCACHE_DATA) or a CoNLL / CoNLL-U
file. Without --model, random forward and backward LMs of --hidden units are profiled (the numbers that
matter here, time and bytes, do not depend on the weights). 'retained bytes' is what the kept vectors
hold on to; 'expected' is n_tokens x D x 4 for cpu and gpu, 0 for none. With several --model the
distinct character LMs of all of them are profiled (each once, as predict runs them), and the weight
bytes are reported: shared embedders once, each tagger's own layers, and the models loaded one by one.
"""
SUMMARY = "time and memory of the embedding storage modes none, cpu, gpu"
DESCRIPTION = "Embed a corpus slice in each storage mode and report time, peak RSS and retained bytes."


@dataclass(frozen=True)
class ModeProfile:
    """One mode's row of the table."""

    mode: str
    seconds: float
    tokens_per_second: float
    peak_rss_bytes: int | None
    retained_bytes: int
    expected_bytes: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="wnut17", help="wnut17, ud_english_lines or a CoNLL(-U) file")
    parser.add_argument("--sentences", type=positive_int, default=500, help="sentences to embed (500)")
    parser.add_argument(
        "--hidden", type=positive_int, default=256, help="hidden size of the random LMs (256)"
    )
    parser.add_argument(
        "-m", "--model", action="append", help="profile the character LMs of this model instead (repeatable)"
    )
    parser.add_argument("--modes", default=",".join(STORAGE_MODES), help="comma-separated (none,cpu,gpu)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="sentences per LM pass (32)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")


def run(args: argparse.Namespace) -> int:
    from embedcache.embeddings.charlm import CharLMEncoder
    from embedcache.profiling import can_reset_peak_rss
    from embedcache.recipes import random_char_lm

    modes = _checked_modes(args.modes)
    device = resolve_device(args.device)
    sentences = _corpus_slice(args.data, args.sentences)
    weights = None
    if args.model is not None:
        pipeline = load_pipeline(args.model, device)
        weights = pipeline.weight_nbytes()
        embedders = [e for e in pipeline.embedders if isinstance(e, CharLMEncoder)]
        if not embedders:
            raise BadInput(f"{', '.join(args.model)}: no character LM embeddings to profile")
    else:
        embedders = [
            CharLMEncoder(random_char_lm(forward, args.hidden, seed=i))
            for i, forward in enumerate((True, False))
        ]
    embedders = [embedder.to(device) for embedder in embedders]
    n_tokens = sum(len(s) for s in sentences)
    dim = sum(embedder.embedding_length for embedder in embedders)
    rows = [profile_mode(embedders, sentences, mode, args.batch_size, dim) for mode in modes]
    if args.json:
        weights_json = None if weights is None else asdict(weights) | {"total": weights.total}
        print(json.dumps({"sentences": len(sentences), "tokens": n_tokens, "dim": dim, "device": str(device),
                          "rows": [asdict(row) for row in rows], "weights": weights_json},
                         indent=1))  # fmt: skip
        return EXIT_OK
    lms = ", ".join(
        f"{'forward' if e.lm.is_forward_lm else 'backward'} {e.embedding_length}" for e in embedders
    )
    print(f"{len(sentences)} sentences, {n_tokens} tokens from {args.data}; char LMs: {lms}; D = {dim}; "
          f"device {device}; batch {args.batch_size}")  # fmt: skip
    print(
        f"{'mode':<6}{'seconds':>9}{'tokens/s':>10}{'peak RSS MB':>13}{'retained bytes':>16}{'expected':>14}"
    )
    for row in rows:
        peak = "n/a" if row.peak_rss_bytes is None else f"{row.peak_rss_bytes / 2**20:.1f}"
        print(f"{row.mode:<6}{row.seconds:>9.3f}{row.tokens_per_second:>10.0f}{peak:>13}"
              f"{row.retained_bytes:>16}{row.expected_bytes:>14}")  # fmt: skip
    for line in [] if weights is None else describe_weight_bytes(weights):
        print(f"weights: {line}")
    if not can_reset_peak_rss():
        print("note: peak RSS is the process's peak so far (this platform cannot reset it per mode)")
    return EXIT_OK


def profile_mode(
    embedders: list[CharLMEncoder],
    sentences: list[TaggedSentence],
    mode: StorageMode,
    batch_size: int,
    dim: int,
) -> ModeProfile:
    """Embed ``sentences`` in ``mode``, keeping the vectors as a trainer would, and measure."""
    from embedcache.profiling import profile_charlm_storage

    profile = profile_charlm_storage(embedders, sentences, mode, batch_size)
    n_tokens = sum(len(s) for s in sentences)
    return ModeProfile(
        mode=mode,
        seconds=profile.seconds,
        tokens_per_second=n_tokens / max(profile.seconds, 1e-9),
        peak_rss_bytes=profile.memory.peak_rss_bytes,
        retained_bytes=profile.retained_bytes,
        expected_bytes=0 if mode == "none" else n_tokens * dim * 4,  # float32 vectors
    )


def _checked_modes(text: str) -> list[StorageMode]:
    modes = [mode.strip() for mode in text.split(",") if mode.strip()]
    unknown = [mode for mode in modes if mode not in STORAGE_MODES]
    if unknown or not modes:
        raise BadInput(f"--modes {text}: choose from {', '.join(STORAGE_MODES)}")
    # Every mode was checked against STORAGE_MODES above.
    return modes  # type: ignore[return-value]


def _corpus_slice(data: str, n: int) -> list[TaggedSentence]:
    from embedcache.data import datasets

    loaders = {"wnut17": datasets.WNUT17, "ud_english_lines": datasets.UD_English_LinES}
    if data in loaders:
        try:
            return loaders[data]().train[:n]
        except FileNotFoundError as error:  # the data folder is not there
            raise BadInput(error) from error
    input_format = guess_format(data)
    if input_format not in ("conll", "conllu"):
        raise BadInput(f"--data {data}: give wnut17, ud_english_lines, or a .conll / .conllu file")
    sentences = [d.sentence for d in islice(read_documents(data, input_format), n) if d.sentence is not None]
    if not sentences:
        raise BadInput(f"--data {data}: no sentences")
    return sentences
