"""``embedcache export``: a model's char LMs as ONNX files, for ``predict --backend onnx --onnx-dir``.

Without ``export``, ``predict --backend onnx`` exports on first use into a cache; a directory made here is
for machines where the cache cannot be written, or to ship the exported LMs beside the model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from embedcache.cli.common import EXIT_OK, BadInput, load_model, note

EPILOG = """\
examples:
  embedcache export en-upos onnx-lms --onnx --int8
  embedcache predict --model en-upos --backend onnx --int8 --onnx-dir onnx-lms posts.txt

Writes <fingerprint>-<fp32|int8>.onnx and its .json (the LM's fingerprint and the file's sha256, checked
when predict reads it) per char LM into OUT. LMs already exported there are kept.
"""

SUMMARY = "export a model's char LMs to ONNX (fp32 or int8) for --backend onnx"
DESCRIPTION = "Export a model's character LMs as ONNX Runtime graphs, fp32 or int8-quantised."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a model directory or a bundled model name")
    parser.add_argument("out", type=Path, help="the directory to write the exported LMs to")
    parser.add_argument("--onnx", action="store_true", required=True, help="ONNX (the one format there is)")
    parser.add_argument("--int8", action="store_true", help="quantise the LM weights to int8")


def run(args: argparse.Namespace) -> int:
    import torch

    from embedcache.embeddings.onnx_lm import OnnxBackendError
    from embedcache.models.backends import export_lms

    tagger = load_model(args.model, torch.device("cpu"))
    if args.out.exists() and not args.out.is_dir():
        raise BadInput(f"{args.out}: not a directory")
    try:
        exports = export_lms(tagger, args.out, args.int8)
    except OnnxBackendError as error:
        raise BadInput(error) from error
    for export in exports:
        note(f"wrote {export.model_path} ({export.model_path.stat().st_size:,} bytes)", args.quiet)
    if not exports:
        note(f"{args.model}: the model has no char LM; nothing to export", args.quiet)
    return EXIT_OK
