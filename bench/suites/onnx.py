"""Suite ``onnx``: predict on the CPU with the char LMs and the tagger's head in torch, ONNX Runtime fp32 and
ONNX Runtime int8, against Flair 0.15.1, for LMs of hidden 256, 1024 and 2048, at 1 and 2 threads; memory;
int8's accuracy cost.

Speed uses random LMs created in the run (:func:`bench.inputs.random_char_lm`; an LM's cost depends on its
sizes, not its values) and a random tagger of the ``predict`` suite's shape: a forward and a backward LM,
re-projection, a BiLSTM of hidden 256, a CRF, the BIOES tags of WNUT-17. Accuracy uses trained models
through ``embedcache evaluate``: the bundled ``en-upos`` on LinES test, and ``--ner-model`` on WNUT-17 test.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from pathlib import Path

import torch
from flair.data import Dictionary
from flair.embeddings import FlairEmbeddings, StackedEmbeddings
from flair.models import SequenceTagger as FlairSequenceTagger

import embedcache as ec
from bench.commands import cli_executable
from bench.harness import BenchConfig, Case, Suite, Timing, time_cases
from bench.inputs import (
    Call,
    character_dictionary,
    entity_types,
    load_wnut17_train,
    predict_calls,
    random_char_lm,
)
from bench.specs import BATCH_SIZE, CALL_SENTENCES, LINES_TEST, SEED, WNUT17
from bench.suites.onnx_results import Accuracy, Memory, OnnxPlan, OnnxRun, SizeRun, TrainedTags, render
from bench.taggers import check_same_shape, flair_span_dictionary
from embedcache.data.readers import guess_format, read_documents
from embedcache.embeddings.language_model import load_language_model, save_language_model
from embedcache.models.backends import use_backend

log = logging.getLogger(__name__)

# WNUT-17 test sentences timed per LM size: all at 256; fewer where Flair's fp32 LM alone takes minutes.
SENTENCES = {256: 512, 1024: 128, 2048: 64}
QUICK_SENTENCES = 32
THREADS = (1, 2)
TAGGER_HIDDEN = 256
# Each case's command-line options (the default, auto, is int8 on a CPU: never left to it).
BACKEND_OPTIONS = {
    "torch": ["--backend", "torch"],
    "onnx_fp32": ["--backend", "onnx"],
    "onnx_int8": ["--backend", "onnx", "--int8"],
}


def native_twin(flair_lm: object, folder: Path) -> ec.CharLMEncoder:
    """embedcache's native LM of the same weights, through embedcache's LM files."""
    save_language_model(flair_lm, folder)  # type: ignore[arg-type]
    return ec.CharLMEncoder(load_language_model(folder))


def taggers(
    labels: list[str], hidden: int, dictionary: Dictionary, folder: Path
) -> tuple[Path, FlairSequenceTagger]:
    """The saved embedcache tagger and Flair's, on the same random LMs of ``hidden``, same tagger seed."""
    lms = [
        random_char_lm(dictionary, hidden, torch.device("cpu"), is_forward) for is_forward in (True, False)
    ]
    encoders = [native_twin(lm, folder / f"lm-{i}") for i, lm in enumerate(lms)]
    torch.manual_seed(SEED)
    ours = ec.SequenceTagger(
        encoders, ec.TagDictionary.for_labels(labels, "BIOES"), "ner", hidden_size=TAGGER_HIDDEN
    )
    ours.save(folder / "model")
    tag_dictionary = flair_span_dictionary(labels)
    torch.manual_seed(SEED)
    embeddings = StackedEmbeddings([FlairEmbeddings(lm) for lm in lms])
    theirs = FlairSequenceTagger(
        embeddings, tag_dictionary, "ner", tag_format="BIOES", hidden_size=TAGGER_HIDDEN
    )
    return folder / "model", theirs.eval()


def loaded(
    model: str | Path, backend: str, threads: int, int8: bool = False, at_once: bool = False
) -> ec.SequenceTagger:
    tagger = ec.SequenceTagger.load(model).eval()
    if backend == "onnx":
        use_backend(tagger, "onnx", int8=int8, threads=threads, concurrent_lms=at_once)
    return tagger


def variants(model: Path, threads: int) -> dict[str, ec.SequenceTagger]:
    """The embedcache cases at ``threads``: torch, and ONNX fp32/int8 with the LMs in turn (and at once)."""
    cases = {"torch": loaded(model, "torch", threads)}
    for precision in ("fp32", "int8"):
        cases[f"onnx_{precision}"] = loaded(model, "onnx", threads, precision == "int8")
        if threads > 1:
            cases[f"onnx_{precision}_at_once"] = loaded(
                model, "onnx", threads, precision == "int8", at_once=True
            )
    return cases


def speed_cases(ours: dict[str, ec.SequenceTagger], theirs: FlairSequenceTagger) -> list[Case[Call]]:
    def ec_case(name: str, tagger: ec.SequenceTagger) -> Case[Call]:
        return Case(name, lambda call: tagger.predict(call.sentences, batch_size=BATCH_SIZE))

    flair = Case(
        "flair",
        lambda call: theirs.predict(call.flair_sentences, mini_batch_size=BATCH_SIZE),
        lambda call: call.rebuild_flair_sentences(),
    )
    return [*(ec_case(name, tagger) for name, tagger in ours.items()), flair]


def same_tags(model: str | Path, sentences: list[list[str]]) -> tuple[int, int]:
    """Sentences whose tags torch and ONNX fp32 agree on, of all."""
    torch_tags = [p.tags for p in loaded(model, "torch", 1).predict(sentences)]
    onnx_tags = [p.tags for p in loaded(model, "onnx", 1).predict(sentences)]
    return sum(a == b for a, b in zip(torch_tags, onnx_tags, strict=True)), len(sentences)


def peak_rss_bytes(command: list[str], folder: Path) -> int:
    """The peak RSS of a command run to its end, read by GNU time.

    Not from ``os.wait4`` on our own child: Linux keeps a process's peak RSS across ``exec``, so a child of
    this multi-GiB process would report at least our size. GNU time is small, and its child starts small.
    """
    report = folder / "time.txt"
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(report), *command], check=True)
    return int(report.read_text().split()[-1]) * 1024  # KiB


def memory(model: Path, sentences: list[ec.TaggedSentence], folder: Path) -> list[Memory]:
    """Bytes of the LMs and the head (torch parameters, ONNX files); peak RSS of ``embedcache predict``."""
    conll = folder / "memory.conll"
    conll.write_text("".join("\n".join(s.tokens) + "\n\n" for s in sentences), encoding="utf-8")
    rows = []
    for name, options in BACKEND_OPTIONS.items():
        tagger = loaded(model, name.split("_")[0], 1, int8=name == "onnx_int8")  # also fills the ONNX cache
        command = [str(cli_executable()), "predict", "--threads", "1", "--model", str(model), str(conll),
                   "--output", str(folder / "out.conll"), "--device", "cpu", "--quiet", *options]  # fmt: skip
        rows.append(Memory(name, network_nbytes(tagger), peak_rss_bytes(command, folder)))
    return rows


def network_nbytes(tagger: ec.SequenceTagger) -> int:
    """What the backend holds of the char LMs and the head: torch parameters, or the ONNX files' bytes."""
    encoders = [e for e in tagger.embeddings.embedders if isinstance(e, ec.CharLMEncoder)]
    if tagger.head_runner is not None:
        return sum(e.runner.model_nbytes for e in encoders) + tagger.head_runner.model_nbytes
    head = (tagger.reproject, tagger.rnn, tagger.emission)
    parameters = [p for module in (*(e.lm for e in encoders), *head) if module for p in module.parameters()]
    return sum(p.numel() * p.element_size() for p in parameters)


# The trained models whose int8 accuracy cost is measured: (model, test file, metric of evaluate --json).
def trained_models(config: BenchConfig) -> list[tuple[str, Path, str]]:
    models = [("en-upos", config.data_dir / LINES_TEST, "accuracy")]
    if config.ner_model is not None:
        models.append((str(config.ner_model), config.data_dir / WNUT17 / "test.conll", "micro_f1"))
    return models


def trained_accuracy(config: BenchConfig) -> tuple[list[Accuracy], list[TrainedTags]]:
    """Each trained model on its test set with torch, ONNX fp32 and ONNX int8 (``embedcache evaluate``),
    and on how many test sentences torch's and ONNX fp32's tags agree."""
    scores, tags = [], []
    for model, test, metric in trained_models(config):
        for name, options in BACKEND_OPTIONS.items():
            command = [str(cli_executable()), "evaluate", "--threads", "1", model, str(test),
                       "--json", "--quiet", "--device", "cpu", *options]  # fmt: skip
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            scores.append(Accuracy(model, test.name, metric, name, result[metric], result["n_sentences"]))
        sentences = [document.sentence.tokens for document in read_documents(test, guess_format(test.name))]
        tags.append(TrainedTags(model, test.name, *same_tags(model, sentences)))
    return scores, tags


def run_size(
    plan: OnnxPlan, config: BenchConfig, hidden: int, test: list[ec.TaggedSentence], root: Path
) -> SizeRun:
    sentences = test[: plan.sentences[hidden]]
    folder = root / f"hidden-{hidden}"
    folder.mkdir()
    labels = entity_types(ec.datasets.WNUT17(config.data_dir / WNUT17).train)
    dictionary = character_dictionary(load_wnut17_train(config.data_dir))
    model, theirs = taggers(labels, hidden, dictionary, folder)
    calls = predict_calls(sentences, CALL_SENTENCES)
    timings: dict[int, dict[str, Timing]] = {}
    for threads in plan.threads:
        torch.set_num_threads(threads)
        ours = variants(model, threads)
        check_same_shape(ours["torch"], theirs, calls[0])
        log.info("hidden %d, %d thread(s): timing %s", hidden, threads, ", ".join([*ours, "flair"]))
        timings[threads] = time_cases(
            speed_cases(ours, theirs),
            calls,
            warmup=config.warmup,
            repeats=config.repeats,
            device=torch.device("cpu"),
        )
    torch.set_num_threads(plan.threads[0])
    tagged = test if hidden == min(SENTENCES) and not plan.quick else sentences
    identical = same_tags(model, [s.tokens for s in tagged])
    rows = memory(model, sentences, folder) if hidden == max(SENTENCES) else []
    return SizeRun(hidden, len(sentences), sum(len(s) for s in sentences), timings, identical, rows)


def plan(config: BenchConfig) -> OnnxPlan:
    if config.device.type != "cpu":
        raise RuntimeError("the onnx suite measures the CPU; run it with --device cpu")
    sentences = {hidden: QUICK_SENTENCES if config.quick else n for hidden, n in SENTENCES.items()}
    ner_model = None if config.ner_model is None else str(config.ner_model)
    return OnnxPlan(sentences, THREADS, accuracy=not config.quick, quick=config.quick, ner_model=ner_model)


def measure(plan: OnnxPlan, config: BenchConfig) -> OnnxRun:
    test = [s for s in ec.datasets.WNUT17(config.data_dir / WNUT17).test if len(s)]
    threads_before, cache_before = torch.get_num_threads(), os.environ.get("EMBEDCACHE_ONNX_CACHE")
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as root:
        os.environ["EMBEDCACHE_ONNX_CACHE"] = str(Path(root) / "onnx-cache")  # also for the subprocesses
        try:
            runs = [run_size(plan, config, hidden, test, Path(root)) for hidden in plan.sentences]
            accuracy, trained_tags = trained_accuracy(config) if plan.accuracy else ([], [])
        finally:
            torch.set_num_threads(threads_before)
            os.environ.pop("EMBEDCACHE_ONNX_CACHE")
            if cache_before is not None:
                os.environ["EMBEDCACHE_ONNX_CACHE"] = cache_before
    return OnnxRun(runs, accuracy, trained_tags)


SUITE = Suite("onnx", ("random", "bundled"), plan, measure, render)
