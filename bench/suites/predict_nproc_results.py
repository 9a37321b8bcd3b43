"""What the ``predict_nproc`` suite reports: wall time, lines/s and peak RSS of each command-line run."""

from __future__ import annotations

from dataclasses import dataclass

from bench.report import SuiteResult, Table, format_ratio, format_seconds, quick_run_note

LM_HIDDEN, TAGGER_HIDDEN = 128, 64


@dataclass(frozen=True)
class NprocPlan:
    """The leading lines of the social-media text to tag, and the runs: ``(label, --nproc, --threads)``."""

    lines: int
    cases: list[tuple[str, int, int | None]]
    quick: bool


DESCRIPTION = f"""\
`embedcache predict --model M TEXT --output OUT --nproc N` over the first {{lines:,}} lines of
`text/social_media_en.txt` (raw text, one document per line, split and tokenised as Flair does), with a small
random-weight model so the run takes minutes on a CPU: forward and backward character LMs of hidden
{LM_HIDDEN} (seeds 0 and 1), a BiLSTM of hidden {TAGGER_HIDDEN} with a CRF over WNUT-17-like BIOES tags.
`--nproc 1` is the ordinary single process, run with one thread and with as many threads as cores;
`--nproc 2` starts two ranks with `torch.distributed.run` (gloo), each with half the cores (the default
under `--nproc`), each tagging a contiguous half of the documents; rank 0 joins the parts. On a busy
machine a multi-threaded process suffers most (a parallel region waits for a descheduled thread).
One run each; the outputs are compared byte for byte."""


def render(plan: NprocPlan, runs: dict[str, tuple[float, int]]) -> SuiteResult:
    lines = plan.lines
    first = next(iter(runs.values()))[0]
    rows = [
        [label, format_seconds(s), f"{lines / s:,.0f}", format_ratio(first / s), f"{rss / 2**20:,.0f}"]
        for label, (s, rss) in runs.items()
    ]
    notes = [
        "Speed-up = wall time of the first row ÷ this run's. Peak RSS: the largest process of the run's "
        "process tree (a rank under torchrun), not the sum over ranks.",
        "Outputs byte-identical across the runs: checked (the suite fails otherwise).",
    ]
    return SuiteResult(
        suite="predict_nproc",
        title="`predict_nproc`: `embedcache predict --nproc 2` vs `--nproc 1` on the CPU",
        description=DESCRIPTION.format(lines=lines) + quick_run_note(plan.quick, f"{lines:,} lines"),
        tables=[
            Table(
                "Wall time, one run each",
                ["run", "wall", "lines/s", "speed-up", "peak RSS (MiB)"],
                rows,
                notes,
            )
        ],
        data={"lines": lines, "runs": runs},
    )
