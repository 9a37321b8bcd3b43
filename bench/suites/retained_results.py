"""What the ``retained`` suite reports: bytes kept per storage mode by each library; the embedding pass."""

from __future__ import annotations

from dataclasses import dataclass

from bench.lms import describe
from bench.report import SuiteResult, Table, format_ratio, format_seconds, quick_run_note
from bench.specs import BATCH_SIZE, RECIPE_LM
from embedcache.profiling import EmbeddingProfile
from embedcache.settings import STORAGE_MODES

LIBRARIES = ("embedcache", "flair")


@dataclass(frozen=True)
class RetainedPlan:
    """The leading WNUT-17 train sentences to embed (``None``: all)."""

    sentences: int | None
    quick: bool


@dataclass(frozen=True)
class RetainedRun:
    """The corpus slice's tokens, the vector width, and each library's profile per storage mode."""

    tokens: int
    dim: int
    profiles: dict[str, dict[str, EmbeddingProfile]]


DESCRIPTION = f"""\
Bytes held by the token embeddings that each storage mode keeps, after embedding WNUT-17 train
(`wnut17/train.conll`) batch by batch ({BATCH_SIZE} sentences, file order) with {describe("random")} (so
D = {2 * RECIPE_LM.hidden_size}):

- **embedcache**: `CharLMEncoder.token_tensors(batch)` of both LMs under `storage_mode(mode)`, kept to the end
  except in `none` (`embedcache.profiling.profile_charlm_storage`);
- **Flair 0.15.1**: `StackedEmbeddings([FlairEmbeddings("LMS/forward.pt"), FlairEmbeddings(
  "LMS/backward.pt")]).embed(batch)` then `flair.training_utils.store_embeddings(batch, mode)`, as its
  `ModelTrainer` does (`embedcache.profiling.profile_flair_storage`).

Bytes are exact: `embedcache.accounting.retained_nbytes` over the kept tensors (distinct storages, so a
vector that views its batch's whole LM states counts those states). Storage `gpu` is the compute device; on a
CPU it is the CPU, where Flair's `cpu` mode moves nothing. Each mode runs once (bytes do not depend on
timing); time and peak RSS growth (the pass's peak RSS minus the RSS at its start) are for orientation."""


def render(plan: RetainedPlan, run: RetainedRun) -> SuiteResult:
    n_tokens, dim, measured = run.tokens, run.dim, run.profiles
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
        description=DESCRIPTION + quick_run_note(plan.quick, f"the first {plan.sentences} sentences"),
        tables=[bytes_table(n_tokens, dim, measured), pass_table(measured)],
        data=data,
    )


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
