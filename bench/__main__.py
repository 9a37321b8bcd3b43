"""``python -m bench``: run benchmark suites and record them in ``BENCHMARKS.md`` and ``bench/results/``.

Example:
    python -m bench --suite embed            # the record; minutes
    python -m bench --suite embed --quick    # a smoke run on a small slice
    python -m bench --suite startup --repeats 7 --baseline /tmp/before   # old and new start-up, one run
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import flair
import torch

from bench.harness import REPO_ROOT, BenchConfig, command_line, environment, load_average
from bench.report import RunInfo, recorded_per_device, update_markdown, write_json
from bench.suites import SUITES

log = logging.getLogger("bench")


def default_data_dir() -> Path:
    """``$EMBEDCACHE_DATA``, else ``../shared/data`` beside the repository (as the tests use)."""
    return Path(os.environ.get("EMBEDCACHE_DATA", REPO_ROOT.parent / "shared" / "data"))


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of embedcache against Flair 0.15.1; results go to BENCHMARKS.md.",
    )
    parser.add_argument(
        "--suite",
        nargs="+",
        choices=sorted(SUITES),
        default=sorted(SUITES),
        metavar="NAME",
        help=f"suites to run (default: all): {', '.join(sorted(SUITES))}",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=default_data_dir(),
        metavar="DIR",
        help="data directory (default: $EMBEDCACHE_DATA, else ../shared/data)",
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=3,
        metavar="N",
        help="timed rounds per case after one warm-up round; medians are reported (default: 3)",
    )
    parser.add_argument("--quick", action="store_true", help="a small slice: checks that a suite runs")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="suite startup: also time the command line of the checkout in DIR (e.g. a worktree of main)",
    )
    parser.add_argument(
        "--ner-model",
        type=Path,
        metavar="DIR",
        help="suite onnx: a trained WNUT-17 NER model (e.g. from recipes/wnut17_ner.toml) whose span F1 is "
        "scored with torch, ONNX fp32 and ONNX int8",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda", "auto"),
        default="auto",
        help="compute device (default: auto, CUDA when available)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch intra-op threads (default: torch's choice); 1 avoids OpenMP stragglers on a busy machine",
    )
    parser.add_argument(
        "--out-json",
        type=Path,
        metavar="PATH",
        help="JSON file of raw timings (one suite only; default: bench/results/SUITE.json, SUITE-cuda.json "
        "on CUDA)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=REPO_ROOT / "BENCHMARKS.md",
        metavar="PATH",
        help="Markdown record to update (default: BENCHMARKS.md at the repository root)",
    )
    return parser


def resolve_device(parser: argparse.ArgumentParser, choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device; use --device cpu or auto")
    return torch.device(choice)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out_json is not None and len(args.suite) > 1:
        parser.error("--out-json takes one suite; leave it out to write bench/results/SUITE.json for each")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    device = resolve_device(parser, args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    flair.device = device  # Flair's embeddings place themselves on flair.device when built
    config = BenchConfig(
        data_dir=args.data, device=device, repeats=args.repeats, quick=args.quick, baseline=args.baseline,
        ner_model=args.ner_model,
    )  # fmt: skip
    for name in args.suite:
        env = environment(device)
        started = time.perf_counter()
        log.info(
            "suite %s on %s, %d repeats%s", name, device, config.repeats, " (quick)" if config.quick else ""
        )
        result = recorded_per_device(SUITES[name].run(config), device.type)
        info = RunInfo(command_line(), env, load_average(), time.perf_counter() - started)
        json_path = args.out_json or REPO_ROOT / "bench" / "results" / f"{result.suite}.json"
        write_json(json_path, result, info)
        update_markdown(args.markdown, result, info)
        log.info("suite %s took %.0f s; wrote %s and %s", name, info.runtime_s, args.markdown, json_path)


if __name__ == "__main__":
    main()
