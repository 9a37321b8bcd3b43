"""Suite ``predict``: tagging WNUT-17 test with embedcache's ``SequenceTagger.predict`` and Flair 0.15.1's,
and with the ``embedcache predict`` command end to end.

Both taggers have one shape: random char LMs of the recipe's size written for both libraries
(:func:`bench.lms.write_char_lms`; Flair reads the ``.pt`` files, embedcache the safetensors of the same
weights), a BiLSTM of hidden 256 with re-projection, a CRF, and the BIOES tags of WNUT-17's six entity types.
Their weights are random and seeded: the time to tag does not depend on their values, only the tags would.
The command line runs in a subprocess on a saved embedcache model, so its time includes the interpreter's
start-up, the imports and loading the model.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from flair.embeddings import FlairEmbeddings, StackedEmbeddings
from flair.models import SequenceTagger as FlairSequenceTagger

import embedcache as ec
from bench.commands import cli_executable
from bench.harness import BenchConfig, Case, Suite, time_cases
from bench.inputs import Call, entity_types, predict_calls
from bench.lms import DIRECTIONS, CharLMFiles, write_char_lms
from bench.specs import BATCH_SIZE, CALL_SENTENCES, NER_TAGGER, SEED, WNUT17
from bench.suites.predict_results import CliInput, PredictPlan, PredictRun, render
from bench.taggers import check_same_shape, flair_span_dictionary

log = logging.getLogger(__name__)

QUICK_SENTENCES = 64


def embedcache_tagger(labels: list[str], lms: CharLMFiles, device: torch.device) -> ec.SequenceTagger:
    embeddings = [ec.CharLMEmbeddings(lms.embedcache_path(direction)) for direction in DIRECTIONS]
    torch.manual_seed(SEED)
    tags = ec.TagDictionary.for_labels(labels, NER_TAGGER.tag_scheme)
    tagger = ec.SequenceTagger(embeddings, tags, "ner", hidden_size=NER_TAGGER.hidden_size)
    return tagger.to(device).eval()


def flair_tagger(labels: list[str], lms: CharLMFiles) -> FlairSequenceTagger:
    """Flair's tagger of the same shape; it places itself on ``flair.device`` (set from ``--device``)."""
    embeddings = StackedEmbeddings([FlairEmbeddings(lms.flair_path(direction)) for direction in DIRECTIONS])
    torch.manual_seed(SEED)
    tagger = FlairSequenceTagger(
        embeddings, flair_span_dictionary(labels), "ner", tag_format=NER_TAGGER.tag_scheme,
        hidden_size=NER_TAGGER.hidden_size,
    )  # fmt: skip
    return tagger.eval()


def predict_cases(ours: ec.SequenceTagger, theirs: FlairSequenceTagger) -> list[Case[Call]]:
    """Each library's own predict, storage ``none`` (their default), batches of 32."""
    return [
        Case("ec_predict", lambda call: ours.predict(call.sentences, batch_size=BATCH_SIZE)),
        Case(
            "flair_predict",
            lambda call: theirs.predict(call.flair_sentences, mini_batch_size=BATCH_SIZE),
            lambda call: call.rebuild_flair_sentences(),
        ),
    ]


def write_inputs(sentences: Sequence[ec.TaggedSentence], directory: Path) -> list[CliInput]:
    """The sentences as a CoNLL file and as raw text (one line each), and a one-sentence file for start-up."""
    conll = directory / "test.conll"
    conll.write_text("".join("\n".join(s.tokens) + "\n\n" for s in sentences), encoding="utf-8")
    text = directory / "test.txt"
    text.write_text("".join(" ".join(s.tokens) + "\n" for s in sentences), encoding="utf-8")
    one = directory / "one.conll"
    one.write_text("\n".join(sentences[0].tokens) + "\n\n", encoding="utf-8")
    return [
        CliInput("startup", one, 1),
        CliInput("conll", conll, len(sentences)),
        CliInput("text", text, len(sentences)),
    ]


def cli_cases(model: Path, inputs: Sequence[CliInput], device: torch.device) -> list[Case[int]]:
    """``embedcache predict --model DIR FILE --output OUT`` per input: a subprocess with our thread count."""
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}

    def case(cli_input: CliInput) -> Case[int]:
        command = [str(cli_executable()), "predict", "--model", str(model), str(cli_input.path)]
        command += ["--output", f"{cli_input.path}.out", "--device", device.type, "--quiet"]
        command += ["--backend=torch"]  # what the in-process cases run; the onnx suite times ONNX Runtime
        return Case(f"cli_{cli_input.name}", lambda _: subprocess.run(command, env=env, check=True))

    return [case(cli_input) for cli_input in inputs]


def plan(config: BenchConfig) -> PredictPlan:
    return PredictPlan(QUICK_SENTENCES if config.quick else None, config.quick)


def measure(plan: PredictPlan, config: BenchConfig) -> PredictRun:
    corpus = ec.datasets.WNUT17(config.data_dir / WNUT17)
    test = [s for s in corpus.test[: plan.sentences] if len(s)]
    labels = entity_types(corpus.train)
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as root:
        lms = write_char_lms(Path(root) / "lms", "random")
        ours, theirs = embedcache_tagger(labels, lms, config.device), flair_tagger(labels, lms)
        calls = predict_calls(test, CALL_SENTENCES)
        check_same_shape(ours, theirs, calls[0])
        timings = time_cases(
            predict_cases(ours, theirs), calls, warmup=config.warmup, repeats=config.repeats,
            device=config.device,
        )  # fmt: skip
        log.info("in-process predict timed; now the command line")
        model = Path(root) / "model"
        ours.save(model)
        inputs = write_inputs(test, Path(root))
        cli_timings = time_cases(
            cli_cases(model, inputs, config.device), [0], warmup=config.warmup, repeats=config.repeats,
            device=torch.device("cpu"),  # the subprocess synchronises its own device before it exits
        )  # fmt: skip
    n_tokens = sum(len(s) for s in test)
    return PredictRun(len(test), n_tokens, timings, inputs, cli_timings)


SUITE = Suite("predict", ("random",), plan, measure, render)
