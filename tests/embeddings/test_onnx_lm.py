"""The ONNX Runtime char LM: torch's states to 1e-5 over chunks, a verified cache, a missing runtime."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from embedcache.embeddings.char_language_model import CharacterDictionary, CharLanguageModel
from embedcache.embeddings.charlm import CharLMEncoder
from embedcache.embeddings.onnx_lm import OnnxCharLM, exported_lm
from embedcache.onnx_graphs import INSTALL_HINT, OnnxBackendError, import_onnxruntime
from tests.conftest import CHARACTERS, make_lm

BATCH_SIZE = 64


def native_lm(is_forward: bool, hidden_size: int = 32, seed: int = 0, **kwargs: object) -> CharLanguageModel:
    torch.manual_seed(seed)
    dictionary = CharacterDictionary(["<unk>", *CHARACTERS])
    return CharLanguageModel(dictionary, is_forward, hidden_size, 1, 16, **kwargs).eval()


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDCACHE_ONNX_CACHE", str(tmp_path / "onnx-cache"))
    return tmp_path / "onnx-cache"


def onnx_twin(encoder: CharLMEncoder, precision: str = "fp32") -> CharLMEncoder:
    """The same LM and options, its forward passes run by ONNX Runtime."""
    twin = CharLMEncoder(encoder.lm, chars_per_chunk=encoder.chars_per_chunk)
    twin.run_lm_with(OnnxCharLM(exported_lm(encoder, precision), encoder.lm))  # type: ignore[arg-type]
    return twin


@pytest.mark.parametrize(
    ("is_forward", "options"),
    [(True, {}), (False, {"nout": 24}), (True, {"recurrent_type": "GRU"})],
    ids=["forward", "backward-projection", "gru"],
)
def test_fp32_states_are_torchs_within_1e_5_across_chunks(data_dir, is_forward, options):
    pytest.importorskip("onnxruntime")
    from embedcache.data.conll import read_column_file

    sentences = [s.tokens for s in read_column_file(data_dir / "wnut17" / "dev.conll")][:256]
    # 96 characters per pass: long tweets run in several chunks, the state carried from one to the next.
    torch_encoder = CharLMEncoder(native_lm(is_forward, **options), chars_per_chunk=96)
    onnx_encoder = onnx_twin(torch_encoder)
    for start in range(0, len(sentences), BATCH_SIZE):
        batch = sentences[start : start + BATCH_SIZE]
        expected, got = torch_encoder.embed_batch(batch).vectors, onnx_encoder.embed_batch(batch).vectors
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() <= 1e-5


def test_an_export_is_made_once_and_then_read(onnx_cache, monkeypatch):
    pytest.importorskip("onnxruntime")
    encoder = CharLMEncoder(native_lm(True))
    first = exported_lm(encoder, "int8")
    assert sorted(p.name for p in onnx_cache.iterdir()) == [
        f"{encoder.lm_fingerprint()}-int8.json",
        f"{encoder.lm_fingerprint()}-int8.onnx",
    ]
    monkeypatch.setattr("embedcache.onnx_graphs.write_export", pytest.fail)
    assert exported_lm(encoder, "int8") == first


def test_a_damaged_export_is_rebuilt_in_the_cache_and_refused_elsewhere(onnx_cache, caplog):
    pytest.importorskip("onnxruntime")
    encoder = CharLMEncoder(native_lm(True))
    export = exported_lm(encoder, "fp32")
    data = bytearray(export.model_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    export.model_path.write_bytes(bytes(data))
    with pytest.raises(OnnxBackendError, match=rf"{export.model_path}: damaged.*embedcache export"):
        exported_lm(encoder, "fp32", onnx_cache, rebuild=False)
    assert exported_lm(encoder, "fp32").problem() is None  # rebuilt
    assert "damaged" in caplog.text


def test_an_export_of_another_lm_is_refused(onnx_cache):
    pytest.importorskip("onnxruntime")
    encoder, other = CharLMEncoder(native_lm(True, seed=1)), CharLMEncoder(native_lm(True, seed=2))
    export, other_export = exported_lm(encoder, "fp32"), exported_lm(other, "fp32")
    # Another LM's files under this LM's name: the recorded fingerprint gives them away.
    export.model_path.write_bytes(other_export.model_path.read_bytes())
    export.meta_path.write_text(other_export.meta_path.read_text())
    with pytest.raises(OnnxBackendError, match="another LM or precision"):
        exported_lm(encoder, "fp32", onnx_cache, rebuild=False)
    assert (
        json.loads(exported_lm(encoder, "fp32").meta_path.read_text())["fingerprint"]
        == encoder.lm_fingerprint()
    )


def test_int8_quantises_the_recurrent_layer():
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    encoder = CharLMEncoder(native_lm(True, hidden_size=64, nout=24))
    fp32, int8 = exported_lm(encoder, "fp32"), exported_lm(encoder, "int8")
    operators = {node.op_type for node in onnx.load(str(int8.model_path)).graph.node}
    assert {"DynamicQuantizeLSTM", "MatMulInteger"} <= operators  # the LSTM and the projection
    assert int8.model_path.stat().st_size < fp32.model_path.stat().st_size / 2


def test_without_onnx_runtime_one_line_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(OnnxBackendError) as caught:
        import_onnxruntime()
    assert (
        str(caught.value)
        == INSTALL_HINT
        == ("ONNX Runtime is not installed; install it with: pip install 'embedcache[onnx]'")
    )


def test_a_fine_tuned_lm_stays_in_torch():
    encoder = CharLMEncoder(native_lm(True), fine_tune=True)
    with pytest.raises(ValueError, match="fine-tuned"):
        encoder.run_lm_with(encoder.lm)


def test_a_flair_lm_is_refused_naming_the_encoder():
    encoder = CharLMEncoder(make_lm(True, hidden_size=16), name="flair-forward")
    with pytest.raises(OnnxBackendError, match="flair-forward: a Flair LanguageModel"):
        exported_lm(encoder, "fp32")


def test_quantising_leaves_the_root_logger_without_handlers(monkeypatch):
    """ONNX Runtime's quantiser logs through logging.warning(), which would give a root logger without
    handlers one, and the command line would print every later log line twice."""
    pytest.importorskip("onnxruntime")
    import logging

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in the command line (pytest adds its own)
    exported_lm(CharLMEncoder(native_lm(True, seed=3)), "int8")
    assert root.handlers == [] and not root.disabled
