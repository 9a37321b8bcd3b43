"""Suite ``predict``: tagging WNUT-17 test with embedcache's ``SequenceTagger.predict`` and Flair 0.15.1's,
and with the ``embedcache predict`` command end to end.

Both taggers have one shape: the trained char LMs of ``out/charlm`` (forward + backward; Flair reads the
``.pt`` files, embedcache the safetensors of the same weights), a BiLSTM of hidden 256 with re-projection, a
CRF, and the BIOES tags of WNUT-17's six entity types. Their weights are random and seeded: the time to tag
does not depend on their values, only the tags would. The command line runs in a subprocess on a saved
embedcache model, so its time includes the interpreter's start-up, the imports and loading the model.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from flair.data import Dictionary, Sentence
from flair.embeddings import FlairEmbeddings, StackedEmbeddings
from flair.models import SequenceTagger as FlairSequenceTagger

import embedcache as ec
from bench.harness import REPO_ROOT, BenchConfig, Case, time_cases
from bench.inputs import BATCH_SIZE
from bench.report import SuiteResult
from bench.suites.predict_results import CliInput, PredictRun, suite_result
from embedcache.data.datasets import WNUT17
from embedcache.models.labels import TagDictionary

log = logging.getLogger(__name__)

LM_DIR = REPO_ROOT / "out" / "charlm"
HIDDEN_SIZE = 256
SEED = 0
CALL_SENTENCES = 128  # sentences per predict call; the harness alternates the libraries call by call
QUICK_SENTENCES = 64


@dataclass(frozen=True)
class Call:
    """One predict call's input, in both libraries' forms."""

    sentences: list[ec.TaggedSentence]
    flair_sentences: list[Sentence]  # rebuilt before every Flair call: predict adds labels to them

    def rebuild_flair_sentences(self) -> None:
        self.flair_sentences[:] = [Sentence(s.tokens) for s in self.sentences]


def entity_types(sentences: Sequence[ec.TaggedSentence]) -> list[str]:
    """The span labels of BIO-tagged sentences (``B-person`` → ``person``), sorted."""
    return sorted({tag[2:] for s in sentences for tag in s.tags or [] if tag != "O"})


def embedcache_tagger(labels: list[str], device: torch.device) -> ec.SequenceTagger:
    embeddings = [ec.CharLMEmbeddings(LM_DIR / "forward"), ec.CharLMEmbeddings(LM_DIR / "backward")]
    torch.manual_seed(SEED)
    tags = TagDictionary.for_labels(labels, "BIOES")
    return ec.SequenceTagger(embeddings, tags, "ner", hidden_size=HIDDEN_SIZE).to(device).eval()


def flair_tagger(labels: list[str]) -> FlairSequenceTagger:
    """Flair's tagger of the same shape; it places itself on ``flair.device`` (set from ``--device``)."""
    embeddings = StackedEmbeddings(
        [FlairEmbeddings(str(LM_DIR / "forward.pt")), FlairEmbeddings(str(LM_DIR / "backward.pt"))]
    )
    dictionary = Dictionary(add_unk=False)
    for label in labels:
        dictionary.add_item(label)
    dictionary.span_labels = True  # as make_label_dictionary marks NER labels: Flair expands them to BIOES
    torch.manual_seed(SEED)
    tagger = FlairSequenceTagger(embeddings, dictionary, "ner", tag_format="BIOES", hidden_size=HIDDEN_SIZE)
    return tagger.eval()


def check_same_shape(ours: ec.SequenceTagger, theirs: FlairSequenceTagger, call: Call) -> None:
    """Refuse to time taggers of different shapes, or a predict that leaves tokens untagged."""
    ours_shape = (
        ours.embeddings.embedding_length,
        ours.rnn.hidden_size,
        len(ours.tags),
        ours.crf is not None,
    )
    theirs_tags = len(theirs.label_dictionary) - 2  # Flair's CRF adds <START> and <STOP>
    theirs_shape = (theirs.embeddings.embedding_length, theirs.rnn.hidden_size, theirs_tags, theirs.use_crf)
    if ours_shape != theirs_shape:
        raise RuntimeError(
            f"predict suite: taggers differ (D, hidden, tags, CRF): {ours_shape} vs {theirs_shape}"
        )
    predictions = ours.predict(call.sentences, batch_size=BATCH_SIZE)
    if [len(p.tags) for p in predictions] != [len(s) for s in call.sentences]:
        raise RuntimeError("predict suite: embedcache's predict left tokens untagged; not timing it")


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


def cli_executable() -> Path:
    """The ``embedcache`` console script of this environment: what a user runs."""
    script = Path(sys.executable).with_name("embedcache")
    if not script.is_file():
        raise FileNotFoundError(f"{script} not found; install the package (pip install -e .) to time the CLI")
    return script


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
        return Case(f"cli_{cli_input.name}", lambda _: subprocess.run(command, env=env, check=True))

    return [case(cli_input) for cli_input in inputs]


def run(config: BenchConfig) -> SuiteResult:
    corpus = WNUT17(config.data_dir / "wnut17")
    test = [s for s in corpus.test[: QUICK_SENTENCES if config.quick else None] if len(s)]
    labels = entity_types(corpus.train)
    ours, theirs = embedcache_tagger(labels, config.device), flair_tagger(labels)
    calls = [Call(test[start : start + CALL_SENTENCES], []) for start in range(0, len(test), CALL_SENTENCES)]
    for call in calls:
        call.rebuild_flair_sentences()
    check_same_shape(ours, theirs, calls[0])
    timings = time_cases(
        predict_cases(ours, theirs), calls, warmup=config.warmup, repeats=config.repeats, device=config.device
    )
    log.info("in-process predict timed; now the command line")
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as root:
        model = Path(root) / "model"
        ours.save(model)
        inputs = write_inputs(test, Path(root))
        cli_timings = time_cases(
            cli_cases(model, inputs, config.device), [0], warmup=config.warmup, repeats=config.repeats,
            device=torch.device("cpu"),  # the subprocess synchronises its own device before it exits
        )  # fmt: skip
    n_tokens = sum(len(s) for s in test)
    return suite_result(PredictRun(len(test), n_tokens, timings, inputs, cli_timings), config.quick)
