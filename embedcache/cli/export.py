"""``embedcache export``: a model's char LMs and head as ONNX files, for ``predict --backend onnx``.

Without ``export``, ``predict --backend onnx`` exports on first use into a cache; a directory made here is
for machines where the cache cannot be written, or to ship the exported graphs beside the model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from embedcache.cli.common import EXIT_OK, BadInput, load_model, note

EPILOG = """\
examples:
  embedcache export en-upos onnx-lms --onnx --int8
  embedcache predict --model en-upos --backend onnx --int8 --onnx-dir onnx-lms posts.txt

Writes <fingerprint>-<fp32|int8>.onnx and its .json (the network's fingerprint and the file's sha256,
checked when predict reads it) per char LM, and one for the tagger's head (re-projection, BiLSTM,
emission scores), into OUT. Graphs already exported there are kept.
"""

SUMMARY = "export a model's char LMs and head to ONNX (fp32 or int8) for --backend onnx"
DESCRIPTION = "Export a model's character LMs and tagger head as ONNX Runtime graphs, fp32 or int8-quantised."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a model directory or a bundled model name")
    parser.add_argument("out", type=Path, help="the directory to write the exported graphs to")
    parser.add_argument("--onnx", action="store_true", required=True, help="ONNX (the one format there is)")
    parser.add_argument("--int8", action="store_true", help="quantise the LM and head weights to int8")


def run(args: argparse.Namespace) -> int:
    import torch

    from embedcache.models.backends import export_graphs
    from embedcache.onnx_graphs import OnnxBackendError

    tagger = load_model(args.model, torch.device("cpu"))
    if args.out.exists() and not args.out.is_dir():
        raise BadInput(f"{args.out}: not a directory")
    try:
        exports = export_graphs(tagger, args.out, args.int8)
    except OnnxBackendError as error:
        raise BadInput(error) from error
    for export in exports:
        note(f"{export.what}: {export.model_path} ({export.model_path.stat().st_size:,} bytes)", args.quiet)
    return EXIT_OK
