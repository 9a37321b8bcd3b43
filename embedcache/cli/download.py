"""``embedcache download``: fetch a corpus from its public original into the data directory."""

from __future__ import annotations

import argparse
import urllib.error
from pathlib import Path

from embedcache.cli.common import EXIT_OK, BadInput, note
from embedcache.data.datasets import CORPORA, data_root, ensure_files

EPILOG = """\
examples:
  embedcache download wnut17                      # into $EMBEDCACHE_DATA/wnut17 (or ../shared/data)
  embedcache download ud_english_lines --to ~/data
  export EMBEDCACHE_DATA=~/data                   # where the recipes, tests and loaders look

corpora (files come from the GitHub repository of each original, under the names the loaders read):
""" + "\n".join(
    f"  {source.name:<20}{source.title} ({source.repository}), {source.license}"
    for source in CORPORA.values()
)

SUMMARY = "download a corpus (WNUT-17, UD English-LinES, UD English-ESLSpok)"
DESCRIPTION = "Download a corpus's train, dev and test files; files already there are kept."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("corpus", choices=sorted(CORPORA), help="the corpus")
    parser.add_argument(
        "--to",
        type=Path,
        metavar="DIR",
        help="data directory; files go to DIR/CORPUS (default: $EMBEDCACHE_DATA, else ../shared/data)",
    )


def run(args: argparse.Namespace) -> int:
    source = CORPORA[args.corpus]
    folder = (args.to if args.to is not None else data_root()) / source.name
    try:
        fetched = ensure_files(folder, source.urls, download=True)
    except urllib.error.URLError as error:  # the network, not the program: one line, as for bad input
        raise BadInput(f"{source.name}: download from {source.repository} failed: {error.reason}") from error
    kept = [name for name in source.urls if name not in fetched]
    if kept:
        note(f"{folder}: kept {', '.join(kept)} (already there)", args.quiet)
    print(f"{source.title} ({source.license}): {', '.join(source.urls)} in {folder}")
    return EXIT_OK
