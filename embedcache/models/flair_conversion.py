"""Trained Flair ``SequenceTagger``s → embedcache models that predict what Flair predicts.

The network maps one to one: Flair's ``embedding2nn`` is our re-projection, its ``rnn`` our BiLSTM, its
``linear`` our emission layer. Flair's CRF scores sentence boundaries with ``<START>``/``<STOP>`` pseudo-tags
in one ``transitions[to, from]`` matrix; ours has explicit start and end vectors, so::

    ours.transitions[i, j] = flair.transitions[j, i]      (tag j follows tag i)
    ours.start[k]          = flair.transitions[k, <START>]
    ours.end[k]            = flair.transitions[<STOP>, k]

The pseudo-tags stay in the converted tag set: Flair's Viterbi scores them at every token like real tags
(a path through them costs about 10,000, so it is never the best one, but ``<STOP>``'s running score is
ordinary and takes its share of the softmax that Flair reports as confidence). Converted models keep
``decoding="flair"``: confidences and spans are read as Flair reads them.

A Flair ``.pt`` is a pickle. :func:`load_flair_tagger` reads it with the allow-list loader of
:mod:`embedcache.embeddings.checkpoints` (tensors, plain containers, ``flair.data.Dictionary``, torch's
version string: nothing that runs code) and lets Flair rebuild its tagger from that plain state. Files the
allow-list refuses load only with ``trust_pickle=True`` (``--trust-pickle``), a full unpickle that runs
whatever code the file holds.
"""

from __future__ import annotations

import datetime
import json
import logging
import pickle
import re
from pathlib import Path
from typing import Any, TypeVar

import flair
import torch
from flair.models import SequenceTagger as FlairSequenceTagger
from torch.torch_version import TorchVersion

from embedcache.checksums import file_sha256
from embedcache.embeddings.checkpoints import (
    UnsafeCheckpointError,
    flair_lm_allowed_globals,
    load_allowlisted_checkpoint,
)
from embedcache.embeddings.flair_adapters import UnsupportedFlairEmbeddings
from embedcache.embeddings.stack import as_embedders
from embedcache.models.labels import FLAIR_SPECIAL_TAGS, Scheme, TagDictionary, detect_scheme
from embedcache.models.serialization import check_saveable, save_tagger
from embedcache.models.tagger import TaggerNetwork

log = logging.getLogger(__name__)

Network = TypeVar("Network", bound=TaggerNetwork)

# What a Flair tagger checkpoint holds beyond an LM's: the torch version in its model card.
FLAIR_TAGGER_ALLOWED_GLOBALS: list[Any] = [*flair_lm_allowed_globals(), TorchVersion]
_START, _STOP = "<START>", "<STOP>"


class FlairConversionError(ValueError):
    """A Flair model that cannot become an embedcache model; the message says which part and why."""


def load_flair_tagger(path: str | Path, *, trust_pickle: bool = False) -> FlairSequenceTagger:
    """A trained Flair ``SequenceTagger`` from its ``.pt`` file, through the allow-list loader.

    Args:
        path: the file ``SequenceTagger.save`` wrote.
        trust_pickle: when the allow-list refuses the file, unpickle it fully. That runs any code the file
            contains: only for files whose origin you trust.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file needs more than the allow-list and ``trust_pickle`` is False.
        FlairConversionError: not a Flair sequence tagger, or one Flair cannot rebuild here.
    """
    path = Path(path)
    try:
        state = load_allowlisted_checkpoint(path, FLAIR_TAGGER_ALLOWED_GLOBALS)
    except UnsafeCheckpointError as error:
        if not trust_pickle:
            raise UnsafeCheckpointError(
                f"{path}: refused by the safe loader ({_refusal_reason(error)}); nothing in it was run. If "
                "you trust where the file comes from, convert it with --trust-pickle (trust_pickle=True), "
                "which unpickles it fully and runs any code it holds"
            ) from error
        log.warning("%s: unpickling in full because trust_pickle=True", path)
        return _flair_tagger(_rebuild(path, path), path)
    model_class = state.get("__cls__") if isinstance(state, dict) else None
    if model_class != "SequenceTagger":
        found = f"a Flair {model_class}" if isinstance(model_class, str) else "no Flair model class in it"
        raise FlairConversionError(f"{path}: not a Flair SequenceTagger ({found})")
    return _rebuild(state, path)


def _rebuild(source: dict[str, Any] | Path, path: Path) -> FlairSequenceTagger:
    """Flair's own ``SequenceTagger.load`` of a checked state (or, trusted, of the file itself)."""
    try:
        return FlairSequenceTagger.load(source)
    except (
        KeyError,
        TypeError,
        ValueError,
        RuntimeError,
        AttributeError,
        EOFError,
        pickle.PickleError,
    ) as error:
        raise FlairConversionError(
            f"{path}: not a Flair SequenceTagger that Flair can rebuild here ({type(error).__name__}: "
            f"{' '.join(str(error).split())})"
        ) from error


def _refusal_reason(error: Exception) -> str:
    """The gist of a refusal: torch's weights-only error is a page of advice around one name."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    if found:
        return f"it needs {found.group(1)}, which is not on the allow-list"
    return " ".join(str(error).split())[-300:]


def _flair_tagger(model: object, path: Path) -> FlairSequenceTagger:
    if not isinstance(model, FlairSequenceTagger):
        raise FlairConversionError(f"{path}: not a Flair SequenceTagger (a {type(model).__name__})")
    return model


def tagger_from_flair(flair_tagger: FlairSequenceTagger, network: type[Network]) -> Network:
    """An embedcache tagger with the Flair tagger's embeddings, weights and tags; it predicts what Flair does.

    The embeddings are adapted (see :mod:`embedcache.embeddings.flair_adapters`) and share the Flair
    objects' weights; the tagger's own weights are copied. ``network`` is the class built:
    :class:`TaggerNetwork`, or ``SequenceTagger.from_flair``'s own class.

    Raises:
        FlairConversionError: an RNN, tag set, option or embedding embedcache's tagger does not have.
    """
    _check_network(flair_tagger)
    try:
        embedders = as_embedders(flair_tagger.embeddings)
    except UnsupportedFlairEmbeddings as error:
        raise FlairConversionError(str(error)) from error
    items = flair_tagger.label_dictionary.get_items()
    tags = TagDictionary(items, _scheme(flair_tagger, items))
    tagger = network(
        embedders,
        tags,
        flair_tagger.tag_type,
        hidden_size=flair_tagger.hidden_size,
        use_crf=flair_tagger.use_crf,
        use_rnn=flair_tagger.use_rnn,
        rnn_layers=flair_tagger.rnn_layers,
        reproject_embeddings=flair_tagger.reproject_embeddings,
        dropout=flair_tagger.use_dropout,
        word_dropout=flair_tagger.use_word_dropout,
        locked_dropout=flair_tagger.use_locked_dropout,
        decoding="flair",
    )
    _copy_weights(flair_tagger, tagger, items)
    tagger.model_card = {"converted_from": _provenance(flair_tagger)}
    return tagger.to(flair_tagger.linear.weight.device).eval()  # where the Flair tagger (and its LMs) are


def _check_network(flair_tagger: FlairSequenceTagger) -> None:
    """Refuse what embedcache's tagger does not compute: other RNNs, one direction, a trained first state."""
    if flair_tagger.use_rnn and (flair_tagger.rnn_type != "LSTM" or not flair_tagger.bidirectional):
        raise FlairConversionError(
            f"the tagger's RNN is a {'bi' if flair_tagger.bidirectional else 'uni'}directional "
            f"{flair_tagger.rnn_type}; embedcache's tagger has a bidirectional LSTM"
        )
    if getattr(flair_tagger, "train_initial_hidden_state", False):
        raise FlairConversionError(
            "the tagger trains its RNN's initial state (train_initial_hidden_state=True); embedcache "
            "starts its tagger from zeros"
        )


def _scheme(flair_tagger: FlairSequenceTagger, tags: list[str]) -> Scheme:
    if not flair_tagger.predict_spans:
        return "plain"
    scheme = detect_scheme([[tag for tag in tags if tag not in FLAIR_SPECIAL_TAGS]])
    if scheme == "plain":
        raise FlairConversionError(f"a span tagger with tags that are not O/B-/I-/E-/S- tags: {tags[:8]}")
    return scheme


@torch.no_grad()
def _copy_weights(flair_tagger: FlairSequenceTagger, tagger: TaggerNetwork, items: list[str]) -> None:
    if flair_tagger.reproject_embeddings:
        tagger.reproject.load_state_dict(flair_tagger.embedding2nn.state_dict())
    if tagger.rnn is not None:  # built with Flair's use_rnn
        tagger.rnn.load_state_dict(flair_tagger.rnn.state_dict())
    tagger.emission.load_state_dict(flair_tagger.linear.state_dict())
    if tagger.crf is not None:  # built with Flair's use_crf
        transitions = flair_tagger.crf.transitions  # [to, from]
        tagger.crf.transitions.copy_(transitions.t())  # [from, to]
        tagger.crf.start_transitions.copy_(transitions[:, items.index(_START)])
        tagger.crf.end_transitions.copy_(transitions[items.index(_STOP)])


def _provenance(flair_tagger: FlairSequenceTagger) -> dict[str, Any]:
    card = getattr(flair_tagger, "model_card", None)
    return {
        "flair_version": flair.__version__,
        "tag_format": flair_tagger.tag_format,
        "converted_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "flair_model_card": json.loads(json.dumps(card, default=str)) if card else None,
    }


def convert_flair_tagger_file(
    source: str | Path, target: str | Path, *, trust_pickle: bool = False
) -> TaggerNetwork:
    """Convert a Flair tagger file into an embedcache model directory (safetensors + JSON) at ``target``.

    The model card records the source file, its sha256 and the conversion date. The directory is written
    atomically, like every saved model.

    Raises:
        FileNotFoundError, UnsafeCheckpointError, FlairConversionError: see :func:`load_flair_tagger`;
            also when the tagger uses embeddings that embedcache model files cannot hold.
    """
    source = Path(source)
    tagger = tagger_from_flair(load_flair_tagger(source, trust_pickle=trust_pickle), TaggerNetwork)
    try:
        check_saveable(tagger)
    except TypeError as error:
        raise FlairConversionError(
            f"{source}: {error}; embedcache runs this tagger in memory (ec.SequenceTagger.from_flair) but "
            "cannot write it as a model directory"
        ) from error
    converted_from = tagger.model_card["converted_from"]
    assert isinstance(converted_from, dict)  # tagger_from_flair's provenance
    converted_from.update(source=str(source), sha256=file_sha256(source))
    save_tagger(tagger, target)
    return tagger
