"""Flair LM checkpoints load with weights_only=True; anything that would run code is refused."""

from __future__ import annotations

import os
import pickle
import pickletools
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import pytest
import torch
from flair.data import Sentence
from flair.embeddings import FlairEmbeddings
from flair.models import LanguageModel

import embedcache as ec
from embedcache.embeddings.checkpoints import (
    UnsafeCheckpointError,
    load_allowlisted_checkpoint,
    to_protocol_2,
)
from embedcache.embeddings.language_model import load_language_model, save_language_model
from tests import peak_rss
from tests.conftest import REPO_ROOT, make_lm


class Exploit:
    """Unpickling this runs a shell command."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


@pytest.fixture
def flair_checkpoint(tmp_path):
    lm = make_lm(False, hidden_size=24, seed=5, document_delimiter="\n")
    lm.dictionary.get_idx_for_items(["a"])  # Flair caches a defaultdict in the dictionary; it gets pickled
    path = tmp_path / "best-lm.pt"
    lm.save(path)  # Flair's own writer: torch.save(..., pickle_protocol=4)
    return lm, path


def test_flair_checkpoint_loads_safely_and_gives_flairs_vectors(flair_checkpoint):
    _, path = flair_checkpoint
    with pytest.raises(pickle.UnpicklingError, match="Unsupported operand"):
        torch.load(path, weights_only=True)  # why the protocol-2 rewrite exists
    embeddings = ec.CharLMEmbeddings(path)
    assert embeddings.name == str(path) and not embeddings.lm.is_forward_lm
    expected, got = Sentence("Safe loading works ."), Sentence("Safe loading works .")
    FlairEmbeddings(LanguageModel.load_language_model(path, has_decoder=False)).embed(expected)
    with ec.storage_mode("none"):
        embeddings.embed(got)
    assert all(torch.equal(a.get_embedding(), b.get_embedding()) for a, b in zip(expected, got, strict=True))


def test_loaded_dictionary_still_maps_unknown_characters_like_flair(flair_checkpoint):
    _, path = flair_checkpoint
    dictionary = ec.CharLMEmbeddings(path).lm.dictionary
    assert dictionary.get_idx_for_items(["😀", "a"]) == [0, dictionary.get_idx_for_item("a")]


def test_protocol_2_rewrite_is_equivalent_for_plain_data():
    data = {"a": [1, 2.5, None, True], "b": (b"\x00\xff", "é"), "c": {"a": "a"}, "big": 2**70}
    rewritten = to_protocol_2(pickle.dumps(data, protocol=4))
    assert {op.name for op, _, _ in pickletools.genops(rewritten)}.isdisjoint(
        {"FRAME", "STACK_GLOBAL", "MEMOIZE"}
    )
    assert pickle.loads(rewritten) == data


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"dictionary": Exploit(), "state_dict": {}}, path, pickle_protocol=4)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pt.*refused"):
        load_allowlisted_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pt"):
        ec.CharLMEmbeddings(path)


def test_a_raw_pickle_file_is_refused(tmp_path):
    path = tmp_path / "raw.pt"
    path.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(UnsafeCheckpointError, match=r"raw\.pt"):
        ec.CharLMEmbeddings(path)


def test_trust_remote_pickle_is_an_explicit_opt_in(flair_checkpoint, tmp_path, monkeypatch):
    lm, _ = flair_checkpoint
    state = {k: getattr(lm, k) for k in ("is_forward_lm", "hidden_size", "nlayers", "embedding_size", "nout")}
    state |= {"dictionary": lm.dictionary, "dropout": 0.1, "state_dict": lm.state_dict(), "extra": Sentence}
    path = tmp_path / "needs-more.pt"
    torch.save(state, path)
    with pytest.raises(UnsafeCheckpointError):
        ec.CharLMEmbeddings(path)
    assert ec.CharLMEmbeddings(path, trust_remote_pickle=True).embedding_length == 24


@pytest.mark.parametrize(
    ("broken", "message"),
    [({"hidden_size": 10**12}, "hidden_size=1000000000000"), ({"nlayers": "2"}, "'nlayers' has type str")],
)
def test_absurd_or_mistyped_configs_are_refused_before_allocating(
    flair_checkpoint, tmp_path, broken, message
):
    lm, _ = flair_checkpoint
    state = {"dictionary": lm.dictionary, "is_forward_lm": True, "hidden_size": 8, "nlayers": 1}
    state |= {"embedding_size": 4, "nout": None, "dropout": 0.1, "state_dict": {}} | broken
    path = tmp_path / "absurd.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=message):
        ec.CharLMEmbeddings(path)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        ec.CharLMEmbeddings(tmp_path / "nope.pt")


def test_safetensors_round_trip_keeps_vectors_and_options(tmp_path):
    lm = make_lm(True, hidden_size=24, seed=6, document_delimiter="\t")
    save_language_model(lm, tmp_path / "lm")
    assert {p.name for p in tmp_path.iterdir()} == {"lm.safetensors", "lm.json"}
    loaded = load_language_model(tmp_path / "lm")
    assert loaded.document_delimiter == "\t" and loaded.dictionary.get_items() == lm.dictionary.get_items()
    tokens = [["same", "vectors", "😀"]]
    assert torch.equal(
        ec.CharLMEncoder(lm).embed_batch(tokens).vectors, ec.CharLMEncoder(loaded).embed_batch(tokens).vectors
    )
    assert ec.CharLMEmbeddings(tmp_path / "lm.safetensors").embedding_length == 24


def test_safetensors_config_with_a_wrong_version_is_refused(tmp_path):
    save_language_model(make_lm(True, hidden_size=8), tmp_path / "lm")
    config = tmp_path / "lm.json"
    config.write_text(config.read_text().replace('"format_version": 1', '"format_version": 99'))
    with pytest.raises(ValueError, match="unsupported LM format version 99"):
        load_language_model(tmp_path / "lm")


def with_entry(
    source: Path, target: Path, name: str, data: bytes, compression: int = zipfile.ZIP_STORED
) -> Path:
    """A copy of the torch archive ``source`` with entry ``name`` (below its folder) added or replaced."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as copy:
        folder = original.namelist()[0].partition("/")[0]
        for entry in original.infolist():
            if entry.filename != f"{folder}/{name}":
                copy.writestr(entry, original.read(entry))
        copy.writestr(f"{folder}/{name}", data, compress_type=compression)
    return target


@pytest.mark.parametrize(
    ("name", "data", "compression", "message"),
    [
        ("payload.sh", b"echo pwned", zipfile.ZIP_STORED, "entry 'best-lm/payload.sh' is not part of a"),
        ("data/7", bytes(50 << 20), zipfile.ZIP_DEFLATED,
         r"entry 'best-lm/data/7' would inflate 5\d,\d+ bytes to 52,428,800"),
        ("version", b"3" * 2000, zipfile.ZIP_STORED, "entry 'best-lm/version' declares 2,000 bytes"),
        ("data.pkl", pickle.dumps(list(range(4_000_000)), protocol=4), zipfile.ZIP_STORED,
         r"its data.pkl of 1\d,\d+,\d+ bytes is out of proportion to its 4\d,\d+ bytes of tensors"),
    ],
    ids=["unknown entry", "zip bomb", "oversized record", "oversized pickle"],
)  # fmt: skip
def test_an_archive_that_is_no_checkpoint_is_refused_before_anything_is_inflated(
    flair_checkpoint, tmp_path, name, data, compression, message
):
    _, path = flair_checkpoint
    damaged = with_entry(path, tmp_path / "damaged.pt", name, data, compression)
    tracemalloc.start()
    try:
        with pytest.raises(
            UnsafeCheckpointError, match=rf"damaged\.pt: refused by the safe loader: {message}"
        ):
            load_allowlisted_checkpoint(damaged)
        assert tracemalloc.get_traced_memory()[1] < 1 << 20  # the 50 MB entry was never inflated
    finally:
        tracemalloc.stop()


def test_a_pickle_reading_a_memo_slot_it_never_stored_names_the_file(flair_checkpoint, tmp_path):
    _, path = flair_checkpoint
    damaged = with_entry(
        path, tmp_path / "memo.pt", "data.pkl", pickle.PROTO + b"\x04" + pickle.BINGET + b"\x07."
    )
    with pytest.raises(UnsafeCheckpointError, match=r"memo\.pt: .* reads memo slot 7, which it never stored"):
        load_allowlisted_checkpoint(damaged)


@pytest.mark.parametrize("kept", [0.1, 0.5, 0.99])
def test_a_truncated_archive_names_the_file(flair_checkpoint, tmp_path, kept):
    _, path = flair_checkpoint
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: int(len(data) * kept)])
    with pytest.raises(UnsafeCheckpointError, match=r"cut\.pt: damaged or truncated checkpoint \("):
        load_allowlisted_checkpoint(cut)


def test_every_entry_torch_writes_is_accepted_for_plain_tensor_checkpoints(tmp_path):
    state = {"model": {"w": torch.arange(6.0).view(2, 3), "b": torch.zeros(2, dtype=torch.int64)}, "epoch": 3}
    torch.save(state, tmp_path / "state.pt", pickle_protocol=4)
    names = {name.partition("/")[2] for name in zipfile.ZipFile(tmp_path / "state.pt").namelist()}
    assert names == {"data.pkl", "data/0", "data/1", "version", "byteorder", ".format_version",
                     ".storage_alignment", ".data/serialization_id"}  # fmt: skip
    loaded = load_allowlisted_checkpoint(tmp_path / "state.pt", allowed_globals=[])
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], state["model"]["w"])


MEMORY_DRIVER = """
import sys, zipfile
from pathlib import Path
from embedcache.embeddings.checkpoints import load_allowlisted_checkpoint
from tests.conftest import make_lm
from tests.peak_rss import peak_growth, reset_peak

plain, bomb = Path(sys.argv[1]) / "lm.pt", Path(sys.argv[1]) / "bomb.pt"
lm = make_lm(True, hidden_size=1024)  # 17.7 MB of tensors
lm.save(plain)
bomb.write_bytes(plain.read_bytes())
with zipfile.ZipFile(bomb, "a", zipfile.ZIP_DEFLATED) as archive:  # + 256 MiB of zeros in 0.26 MB
    with archive.open("lm/data/99", "w", force_zip64=True) as entry:
        for _ in range(16):
            entry.write(bytes(1 << 24))
print(sum(t.numel() * t.element_size() for t in lm.state_dict().values()))
del lm
for path in (plain, bomb):
    before = reset_peak()
    try:
        state = load_allowlisted_checkpoint(path)
    except Exception as error:
        state = type(error).__name__
    print(peak_growth(before), "loaded" if isinstance(state, dict) else state)
    state = None
"""


@pytest.mark.slow
@pytest.mark.skipif(not peak_rss.SUPPORTED, reason="needs Linux's peak RSS reset")
def test_peak_memory_of_a_loaded_or_refused_checkpoint_stays_within_its_tensors(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_DRIVER, str(tmp_path)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    tensor_bytes, plain, bomb = result.stdout.splitlines()
    plain_growth, plain_outcome = plain.split()
    bomb_growth, bomb_outcome = bomb.split()
    assert (plain_outcome, bomb_outcome) == ("loaded", "UnsafeCheckpointError")
    assert int(plain_growth) <= 1.5 * int(tensor_bytes)  # the tensors once, plus the pickle and buffers
    assert int(bomb_growth) <= 4 << 20  # the 256 MiB entry is refused unread
