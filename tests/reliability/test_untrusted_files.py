"""Untrusted model files: loading never runs code from a file, and a lying file is refused before it costs.

Complements ``tests/models/test_serialization.py`` and ``tests/embeddings/test_checkpoints.py`` (pickles
refused, absurd dimensions refused by the bounds, bad JSON named): here every code-carrying pickle would
create a marker file if it ran, and the test checks that the marker never appears (and that it does
appear under the documented opt-in ``trust_remote_pickle=True``, so the payload is live); safetensors
headers that lie about lengths, offsets, dtypes and shapes are refused; configs that claim sizes within
the per-field bounds but far beyond their weights files are refused before any allocation, shown in a
process whose address space would not hold the claim; and config fields of any JSON type never escape
as anything but :class:`ModelFormatError`.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from gensim.models import KeyedVectors
from hypothesis import event, given
from hypothesis import strategies as st
from safetensors.torch import save_file

import embedcache as ec
from embedcache.embeddings.checkpoints import UnsafeCheckpointError
from embedcache.inference.tagger import SequenceTagger
from embedcache.models.labels import TagDictionary
from embedcache.models.serialization import ModelFormatError
from tests.conftest import REPO_ROOT, make_lm
from tests.reliability.strategies import fuzz_settings


class TouchMarker:
    """Unpickling this creates ``marker`` (through ``os.system``, the classic payload)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class EvalMarker(TouchMarker):
    """The same through ``builtins.eval`` (no shell)."""

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


def save_tiny_tagger(path: Path) -> None:
    torch.manual_seed(0)
    words = KeyedVectors(4)
    words.add_vectors(["anna", "rome"], [[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    embedders = [ec.CharLMEmbeddings(make_lm(True, 12)), ec.WordEmbeddings(words)]
    tags = TagDictionary.for_labels(["PER", "LOC"], "BIOES")
    SequenceTagger(embedders, tags, "ner", hidden_size=6).save(path)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid model directory; tests copy it before damaging it."""
    path = tmp_path_factory.mktemp("untrusted") / "model"
    save_tiny_tagger(path)
    return path


@pytest.fixture
def model(saved_model: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    copy.mkdir()
    for file in saved_model.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    return copy


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


# --- pickles that would run code ---------------------------------------------------------------------------


def lm_checkpoint_state(payload: object) -> dict:
    lm = make_lm(True, hidden_size=8)
    settings = {"is_forward_lm": True, "hidden_size": 8, "nlayers": 1, "embedding_size": 32, "nout": None}
    return {"dictionary": payload, "dropout": 0.1, "state_dict": lm.state_dict(), **settings}


def write_torch_zip(path: Path, payload: object, protocol: int) -> None:
    torch.save(lm_checkpoint_state(payload), path, pickle_protocol=protocol)


def write_torch_legacy(path: Path, payload: object, protocol: int) -> None:
    torch.save(
        lm_checkpoint_state(payload), path, pickle_protocol=protocol, _use_new_zipfile_serialization=False
    )


def write_payload_in_state_dict(path: Path, payload: object, protocol: int) -> None:
    state = lm_checkpoint_state(make_lm(True, hidden_size=8).dictionary)
    state["state_dict"] = {"encoder.weight": payload}
    torch.save(state, path, pickle_protocol=protocol)


def write_raw_pickle(path: Path, payload: object, protocol: int) -> None:
    path.write_bytes(pickle.dumps(lm_checkpoint_state(payload), protocol=protocol))


CHECKPOINT_WRITERS = {
    "torch zip": write_torch_zip,
    "torch legacy": write_torch_legacy,
    "payload as a tensor": write_payload_in_state_dict,
    "raw pickle": write_raw_pickle,
}
PAYLOADS = {"os.system": TouchMarker, "builtins.eval": EvalMarker}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")  # torch's note on the files we craft
@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("writer", CHECKPOINT_WRITERS)
def test_a_code_carrying_lm_checkpoint_is_refused_and_its_code_never_runs(
    tmp_path, writer, protocol, payload
):
    marker, path = tmp_path / "pwned", tmp_path / "lm.pt"
    CHECKPOINT_WRITERS[writer](path, PAYLOADS[payload](marker), protocol)
    with pytest.raises(UnsafeCheckpointError, match=r"lm\.pt"):
        ec.CharLMEmbeddings(path)
    assert not marker.exists()


def test_the_payload_is_live_and_runs_only_under_trust_remote_pickle(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "lm.pt"
    write_torch_zip(path, TouchMarker(marker), 4)
    with pytest.raises(UnsafeCheckpointError):
        ec.CharLMEmbeddings(path)
    assert not marker.exists()
    with pytest.raises(ValueError, match="no character dictionary"):  # the payload ran, then the check
        ec.CharLMEmbeddings(path, trust_remote_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize(
    "target", ["tagger.safetensors", "embedding-0.safetensors", "embedding-1.safetensors"]
)
def test_a_code_carrying_pickle_in_place_of_model_weights_never_runs(model, tmp_path, target):
    marker = tmp_path / "pwned"
    (model / target).write_bytes(pickle.dumps({"weight": TouchMarker(marker)}))
    with pytest.raises(ModelFormatError, match="not a valid safetensors file"):
        SequenceTagger.load(model)
    assert not marker.exists()


def test_loading_a_model_directory_never_unpickles(model, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model directory was unpickled")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads"), (pickle, "Unpickler")):
        monkeypatch.setattr(module, name, refuse)
    assert SequenceTagger.load(model).predict("Anna lives in Rome")[0].tokens == [
        "Anna",
        "lives",
        "in",
        "Rome",
    ]


# --- safetensors headers that lie --------------------------------------------------------------------------

F32_PAIR = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
LYING_HEADERS = {
    "header length 2**63": struct.pack("<Q", 2**63) + b"{}",
    "header length past the end": struct.pack("<Q", 4096) + b"{}",
    "header not JSON": struct.pack("<Q", 5) + b"{nop}",
    "offsets overlap": safetensors_bytes(
        {"a": F32_PAIR, "b": {**F32_PAIR, "data_offsets": [4, 12]}}, bytes(12)
    ),
    "offsets past the data": safetensors_bytes({"a": {**F32_PAIR, "data_offsets": [0, 16]}}, bytes(8)),
    "shape of 10**12 elements on 8 bytes": safetensors_bytes(
        {"a": {**F32_PAIR, "shape": [10**12]}}, bytes(8)
    ),
    "data not covered": safetensors_bytes({"a": {**F32_PAIR, "data_offsets": [4, 12]}}, bytes(12)),
    "unknown dtype": safetensors_bytes({"a": {**F32_PAIR, "dtype": "F128"}}, bytes(8)),
}


@pytest.mark.parametrize(
    "target", ["tagger.safetensors", "embedding-0.safetensors", "embedding-1.safetensors"]
)
@pytest.mark.parametrize("lie", LYING_HEADERS)
def test_a_safetensors_header_that_lies_is_refused_naming_the_file(model, target, lie):
    (model / target).write_bytes(LYING_HEADERS[lie])
    with pytest.raises(ModelFormatError, match=rf"{target}: "):
        SequenceTagger.load(model)


def rewrite_weights(path: Path, change: Callable[[dict[str, torch.Tensor]], None]) -> None:
    from safetensors.torch import load_file

    weights = load_file(str(path))
    change(weights)
    save_file(weights, str(path))


DISAGREEING_WEIGHTS = [
    ("tagger.safetensors", lambda w: w.update(emission_bias=w.pop("emission.bias")), "missing tensors"),
    (
        "tagger.safetensors",
        lambda w: w.update({"crf.transitions": w["crf.transitions"].double()}),
        r"crf\.transitions is torch\.float64 \[9, 9\], but .*config\.json implies torch\.float32 \[9, 9\]",
    ),
    (
        "tagger.safetensors",
        lambda w: w.update({"emission.bias": torch.zeros(10)}),
        r"emission\.bias .*\[10\]",
    ),
    (
        "embedding-0.safetensors",
        lambda w: w.update({"rnn.weight_hh_l0": torch.zeros(48, 13)}),
        r"embedding-0\.safetensors: rnn\.weight_hh_l0 is torch\.float32 \[48, 13\], but .*embedding-0\.json",
    ),
    (
        "embedding-0.safetensors",
        lambda w: w.update({"encoder.weight": w["encoder.weight"].double()}),  # float16 is a storage dtype
        "encoder.weight is torch.float64",
    ),
    ("embedding-1.safetensors", lambda w: w.update({"vectors": torch.zeros(3, 5)}), r"vectors .*\[3, 5\]"),
]


@pytest.mark.parametrize(("target", "change", "message"), DISAGREEING_WEIGHTS)
def test_weights_whose_dtype_or_shape_disagree_with_the_config_are_refused(model, target, change, message):
    rewrite_weights(model / target, change)
    with pytest.raises(ModelFormatError, match=message):
        SequenceTagger.load(model)


# --- configs that claim more than their files hold ---------------------------------------------------------

# What each claim would allocate: tagger LSTM 2 x 4 x 65536 x (65536 + 16) floats = 137 GB; 64 layers of
# 16384 = 1.1 TB; LM 64 x 4 x 65536 x 131072 floats = 9 PB, and 4 x 65536 x 131072 floats = 137 GB; word
# vectors 3 x 10**12 floats = 12 TB; subword buckets 4 x 10**10 floats = 160 GB. All far above the limit.
ABSURD_CLAIMS = {
    "tagger hidden_size 65536": ("config.json", "c['tagger']['hidden_size'] = 65536"),
    "tagger 64 layers of 16384": ("config.json", "c['tagger'].update(hidden_size=16384, rnn_layers=64)"),
    "LM 64 layers of 65536": ("embedding-0.json", "c.update(hidden_size=65536, nlayers=64)"),
    "LM hidden 65536, embedding 65536": (
        "embedding-0.json",
        "c.update(hidden_size=65536, embedding_size=65536)",
    ),
    "word vectors of dimension 10**12": (
        "config.json",
        "c['embeddings'][1]['params']['embedding_length'] = 10**12",
    ),
    "10**10 subword buckets": ("config.json", "c['embeddings'][1]['params']['subword'] = [3, 6, 10**10]"),
}

_CLAIMS_SCRIPT = """
import json, resource, sys, torch
torch.set_num_threads(1)
from embedcache.models.serialization import ModelFormatError
from embedcache.inference.tagger import SequenceTagger
SequenceTagger.load(sys.argv[1])  # warm up: every import and allocator pool is in place
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
limit = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize() + (1 << 30)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # 1 GiB more than mapped now: no claim fits
results = {}
for directory in sys.argv[2:]:
    try:
        SequenceTagger.load(directory)
        results[directory] = ["loaded", ""]
    except ModelFormatError as error:
        results[directory] = ["ModelFormatError", str(error)]
    except BaseException as error:
        results[directory] = [type(error).__name__, str(error)]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"results": results, "peak_growth": after - before}))
"""


@pytest.mark.slow
def test_absurd_size_claims_are_refused_before_any_large_allocation(saved_model, tmp_path):
    directories = []
    for name, (file, change) in ABSURD_CLAIMS.items():
        directory = tmp_path / name.replace(" ", "_").replace("*", "")
        directory.mkdir()
        for source in saved_model.iterdir():
            (directory / source.name).write_bytes(source.read_bytes())
        edit_json(directory / file, lambda c, change=change: exec(change, {"c": c}))
        directories.append(str(directory))
    command = [sys.executable, "-c", _CLAIMS_SCRIPT, str(saved_model), *directories]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    for directory, (kind, message) in report["results"].items():
        assert kind == "ModelFormatError", (directory, kind, message)
        assert "implies" in message and "allocate" not in message, (directory, message)
    assert report["peak_growth"] < 64 << 20  # no claim was allocated, even in part


# --- any JSON value in any config field --------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**15), 10**15)
    | st.floats(allow_nan=True)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def json_paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and indices) to a value inside a JSON document."""
    paths = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            paths += json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:4]):  # the first few entries of long lists (characters, tags)
            paths += json_paths(item, (*prefix, index))
    return paths


@pytest.fixture(scope="module")
def config_paths(saved_model: Path) -> list[tuple[str, tuple]]:
    return [
        (file, path)
        for file in ("config.json", "embedding-0.json")
        for path in json_paths(json.loads((saved_model / file).read_text()))
    ]


@fuzz_settings(200)
@given(choice=st.data(), value=json_values)
def test_any_json_value_in_any_config_field_loads_or_is_a_model_format_error(
    saved_model, config_paths, tmp_path_factory, choice, value
):
    file, path = choice.draw(st.sampled_from(config_paths))
    directory = tmp_path_factory.mktemp("typed")
    for source in saved_model.iterdir():
        (directory / source.name).write_bytes(source.read_bytes())

    def replace(config: dict) -> None:
        *parents, last = path
        for key in parents:
            config = config[key]
        config[last] = value

    edit_json(directory / file, replace)
    try:
        SequenceTagger.load(directory)
    except ModelFormatError as error:
        assert str(directory) in str(error)
        event("refused")
        return
    event("loaded (a harmless change)")
