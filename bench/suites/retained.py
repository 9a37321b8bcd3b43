"""Suite ``retained``: the bytes that kept token embeddings hold on to, per storage mode, embedcache against
Flair 0.15.1.

Both libraries embed WNUT-17 train batch by batch, as a trainer's first epoch does, with the trained char LMs
of ``out/charlm`` (forward + backward), and keep what each storage mode keeps: embedcache's
``CharLMEncoder.token_tensors`` under ``storage_mode(mode)``; Flair's ``embed`` followed by
``store_embeddings(batch, mode)``. :func:`embedcache.accounting.retained_nbytes` counts the distinct storages
behind the kept vectors (through :mod:`embedcache.profiling`). Bytes do not depend on timing, so each mode
runs once, without repeats; the pass's time and peak memory are printed beside the bytes for orientation.
"""

from __future__ import annotations

import logging

from flair.data import Sentence
from flair.embeddings import FlairEmbeddings, StackedEmbeddings

from bench.harness import REPO_ROOT, BenchConfig
from bench.inputs import BATCH_SIZE
from bench.report import SuiteResult, Table, format_ratio, format_seconds, quick_run_note
from embedcache import CharLMEmbeddings
from embedcache.data.datasets import WNUT17
from embedcache.profiling import EmbeddingProfile, profile_charlm_storage, profile_flair_storage
from embedcache.settings import STORAGE_MODES

log = logging.getLogger(__name__)

LM_DIR = REPO_ROOT / "out" / "charlm"
QUICK_SENTENCES = 100
LIBRARIES = ("embedcache", "flair")

DESCRIPTION = f"""\
Bytes held by the token embeddings that each storage mode keeps, after embedding WNUT-17 train
(`wnut17/train.conll`) batch by batch ({BATCH_SIZE} sentences, file order) with the trained char LMs of
`out/charlm` (forward + backward, hidden 256 each, so D = 512):

- **embedcache**: `CharLMEncoder.token_tensors(batch)` of both LMs under `storage_mode(mode)`, kept to the end
  except in `none` (`embedcache.profiling.profile_charlm_storage`);
- **Flair 0.15.1**: `StackedEmbeddings([FlairEmbeddings("out/charlm/forward.pt"), FlairEmbeddings(
  "out/charlm/backward.pt")]).embed(batch)` then `flair.training_utils.store_embeddings(batch, mode)`, as its
  `ModelTrainer` does (`embedcache.profiling.profile_flair_storage`).

Bytes are exact: `embedcache.accounting.retained_nbytes` over the kept tensors (distinct storages, so a
vector that views its batch's whole LM states counts those states). Storage `gpu` is the compute device; on a
CPU it is the CPU, where Flair's `cpu` mode moves nothing. Each mode runs once (bytes do not depend on
timing); time and peak RSS growth (the pass's peak RSS minus the RSS at its start) are for orientation."""


def profiles(config: BenchConfig) -> tuple[int, int, dict[str, dict[str, EmbeddingProfile]]]:
    """Embed the corpus once per library and mode; returns (n_tokens, D, profiles by library and mode)."""
    train = WNUT17(config.data_dir / "wnut17").train[: QUICK_SENTENCES if config.quick else None]
    embedders = [
        CharLMEmbeddings(LM_DIR / direction).to(config.device) for direction in ("forward", "backward")
    ]
    flair_embeddings = StackedEmbeddings(
        [FlairEmbeddings(str(LM_DIR / f"{direction}.pt")) for direction in ("forward", "backward")]
    )
    measured: dict[str, dict[str, EmbeddingProfile]] = {library: {} for library in LIBRARIES}
    for mode in STORAGE_MODES:  # the libraries alternate, so load from other processes falls on both
        measured["embedcache"][mode] = profile_charlm_storage(embedders, train, mode, BATCH_SIZE)
        sentences = [Sentence(s.tokens) for s in train]
        measured["flair"][mode] = profile_flair_storage(
            flair_embeddings, sentences, mode, BATCH_SIZE, config.device
        )
        del sentences  # frees what Flair kept before the next mode
        kept = [f"{measured[library][mode].retained_bytes:,}" for library in LIBRARIES]
        log.info("storage %s: embedcache %s, Flair %s bytes", mode, *kept)
    dim = sum(embedder.embedding_length for embedder in embedders)
    return sum(len(s) for s in train), dim, measured


def _mib(nbytes: int | None) -> str:
    return "–" if nbytes is None else f"{nbytes / 2**20:,.1f} MiB"


def bytes_table(n_tokens: int, dim: int, measured: dict[str, dict[str, EmbeddingProfile]]) -> Table:
    exact = n_tokens * dim * 4
    rows = []
    for mode in STORAGE_MODES:
        ours, theirs = (measured[library][mode].retained_bytes for library in LIBRARIES)
        ratio = format_ratio(theirs / ours) if ours else "–"
        expected = exact if mode != "none" else 0
        rows.append([f"`{mode}`", f"{ours:,}", "yes" if ours == expected else "**no**", f"{theirs:,}", ratio])
    notes = [
        f"{n_tokens:,} tokens, D = {dim}: n × D × 4 = {exact:,} bytes (0 in `none`, where nothing is kept)."
    ]
    columns = [
        "storage",
        "embedcache bytes",
        "embedcache = n × D × 4",
        "Flair 0.15.1 bytes",
        "Flair ÷ embedcache",
    ]
    return Table("Bytes retained per storage mode", columns, rows, notes)


def pass_table(measured: dict[str, dict[str, EmbeddingProfile]]) -> Table:
    rows = []
    for library in LIBRARIES:
        for mode, profile in measured[library].items():
            memory = profile.memory
            rows.append([library, f"`{mode}`", format_seconds(profile.seconds),
                         _mib(memory.rss_growth_bytes), _mib(memory.peak_device_bytes)])  # fmt: skip
    columns = ["library", "storage", "embedding time", "peak RSS growth", "peak device memory"]
    return Table("The embedding pass (one run each; for orientation)", columns, rows)


def run(config: BenchConfig) -> SuiteResult:
    n_tokens, dim, measured = profiles(config)
    description = DESCRIPTION + quick_run_note(config.quick, f"the first {QUICK_SENTENCES} sentences")
    data = {
        "tokens": n_tokens,
        "dim": dim,
        "profiles": {
            library: {
                mode: {
                    "seconds": p.seconds,
                    "retained_bytes_after_batch": p.retained_bytes_after_batch,
                    "rss_growth_bytes": p.memory.rss_growth_bytes,
                    "peak_device_bytes": p.memory.peak_device_bytes,
                }
                for mode, p in by_mode.items()
            }
            for library, by_mode in measured.items()
        },
    }
    return SuiteResult(
        suite="retained",
        title="`retained`: bytes kept per storage mode, embedcache vs Flair 0.15.1 (WNUT-17 train)",
        description=description,
        tables=[bytes_table(n_tokens, dim, measured), pass_table(measured)],
        data=data,
    )
