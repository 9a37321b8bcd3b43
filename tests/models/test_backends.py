"""Backends of a loaded tagger: onnx fp32 tags as torch does (LMs and head), LMs at once or in turn alike,
int8 quantises the head's BiLSTM, torch again."""

from __future__ import annotations

import pytest
import torch
from gensim.models import KeyedVectors

import embedcache as ec
from embedcache.data.conll import read_column_file
from embedcache.embeddings.charlm import CharLMEncoder
from embedcache.embeddings.onnx_lm import OnnxCharLM
from embedcache.inference.tagger import SequenceTagger
from embedcache.models.backends import use_backend
from embedcache.models.labels import TagDictionary
from embedcache.models.onnx_head import OnnxHead, exported_head, head_fingerprint
from embedcache.onnx_graphs import OnnxBackendError
from tests.conftest import make_lm

pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDCACHE_ONNX_CACHE", str(tmp_path / "onnx-cache"))


@pytest.fixture
def saved_tagger(tmp_path):
    """A random NER tagger on two LMs and word vectors, with large emission weights so that tags vary."""
    torch.manual_seed(0)
    words = KeyedVectors(4)
    words.add_vectors(["the", "a"], [[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    embedders = [
        ec.CharLMEmbeddings(make_lm(True, 24, seed=1)),
        ec.CharLMEmbeddings(make_lm(False, 16, seed=2)),
        ec.WordEmbeddings(words),
    ]
    tags = TagDictionary.for_labels(["LOC", "ORG", "PER"], "BIOES")
    tagger = SequenceTagger(embedders, tags, "ner", use_rnn=False, use_crf=False)
    torch.nn.init.normal_(tagger.emission.weight, std=30.0)
    tagger.save(tmp_path / "model")
    return tmp_path / "model"


@pytest.fixture
def saved_bilstm_crf(tmp_path):
    """A random BiLSTM-CRF NER tagger with re-projection (the head the onnx backend exports whole)."""
    torch.manual_seed(0)
    embedders = [
        ec.CharLMEmbeddings(make_lm(True, 24, seed=1)),
        ec.CharLMEmbeddings(make_lm(False, 16, seed=2)),
    ]
    tags = TagDictionary.for_labels(["LOC", "ORG", "PER"], "BIOES")
    tagger = SequenceTagger(embedders, tags, "ner", hidden_size=12)
    torch.nn.init.normal_(tagger.emission.weight, std=3.0)
    tagger.save(tmp_path / "bilstm-crf")
    return tmp_path / "bilstm-crf"


@pytest.fixture(scope="module")
def wnut17_dev(data_dir) -> list[list[str]]:
    return [s.tokens for s in read_column_file(data_dir / "wnut17" / "dev.conll")]


def test_onnx_fp32_gives_torchs_tags_on_wnut17_dev_and_vectors_within_1e_5(saved_tagger, wnut17_dev):
    torch_tagger = SequenceTagger.load(saved_tagger)
    onnx_tagger = SequenceTagger.load(saved_tagger, backend="onnx")
    assert all(isinstance(e.runner, OnnxCharLM) for e in _encoders(onnx_tagger))
    expected = [p.tags for p in torch_tagger.predict(wnut17_dev)]
    assert len({tag for tags in expected for tag in tags}) >= 3  # tags that vary, so that equality means much
    assert [p.tags for p in onnx_tagger.predict(wnut17_dev)] == expected
    batch = wnut17_dev[:64]
    assert (onnx_tagger.embed(batch)[0] - torch_tagger.embed(batch)[0]).abs().max().item() <= 1e-5


def test_lms_at_once_give_the_vectors_of_lms_in_turn(saved_tagger, wnut17_dev):
    tagger = SequenceTagger.load(saved_tagger)
    use_backend(tagger, "onnx", threads=2, concurrent_lms=False)
    in_turn = tagger.embed(wnut17_dev[:64])[0]
    use_backend(tagger, "onnx", threads=2)
    assert tagger.embeddings.concurrent
    assert torch.equal(tagger.embed(wnut17_dev[:64])[0], in_turn)


def test_torch_again_drops_the_sessions_and_int8_needs_onnx(saved_tagger):
    tagger = SequenceTagger.load(saved_tagger, backend="onnx", int8=True)
    use_backend(tagger, "torch")
    assert [e.runner for e in _encoders(tagger)] == [None, None] and not tagger.embeddings.concurrent
    with pytest.raises(ValueError, match="int8 LMs run on the onnx backend"):
        use_backend(tagger, "torch", int8=True)


def _encoders(tagger: SequenceTagger) -> list[CharLMEncoder]:
    return [e for e in tagger.embeddings.embedders if isinstance(e, CharLMEncoder)]


def test_the_fingerprint_names_the_backend_so_caches_of_int8_vectors_stay_apart(saved_tagger):
    tagger = SequenceTagger.load(saved_tagger)
    torch_prints = [e.fingerprint() for e in _encoders(tagger)]
    use_backend(tagger, "onnx", int8=True)
    int8_prints = [e.fingerprint() for e in _encoders(tagger)]
    use_backend(tagger, "onnx")
    fp32_prints = [e.fingerprint() for e in _encoders(tagger)]
    assert len(set(torch_prints) | set(int8_prints) | set(fp32_prints)) == 6
    assert [e.lm_fingerprint() for e in _encoders(tagger)] == torch_prints  # the exports' key


def test_the_onnx_head_gives_torchs_scores_within_1e_5_and_its_tags(saved_bilstm_crf, wnut17_dev):
    torch_tagger = SequenceTagger.load(saved_bilstm_crf).eval()
    onnx_tagger = SequenceTagger.load(saved_bilstm_crf, backend="onnx").eval()
    assert isinstance(onnx_tagger.head_runner, OnnxHead) and torch_tagger.head_runner is None
    # Batches of unequal lengths (and one of a single sentence): the graph packs as torch does.
    for batch in (wnut17_dev[:64], wnut17_dev[100:101], [["a"], [], ["the", "cat", "sat"]]):
        padded, lengths = torch_tagger.embed(batch)
        mask = torch.arange(padded.shape[1]) < lengths.unsqueeze(1)
        expected = torch_tagger.emissions(padded, lengths)[mask]
        assert (onnx_tagger.head_runner(padded, lengths)[mask] - expected).abs().max().item() <= 1e-5
    expected_tags = [p.tags for p in torch_tagger.predict(wnut17_dev)]
    assert len({tag for tags in expected_tags for tag in tags}) >= 3
    assert [p.tags for p in onnx_tagger.predict(wnut17_dev)] == expected_tags


def test_int8_quantises_the_heads_bilstm_and_matrices(saved_bilstm_crf, tmp_path):
    onnx = pytest.importorskip("onnx")
    tagger = SequenceTagger.load(saved_bilstm_crf)
    int8 = exported_head(tagger, "int8", tmp_path / "graphs")
    operators = {node.op_type for node in onnx.load(str(int8.model_path)).graph.node}
    assert {"DynamicQuantizeLSTM", "MatMulInteger"} <= operators  # the BiLSTM, re-projection and emission
    assert int8.fingerprint == head_fingerprint(tagger)


def test_exporting_the_head_leaves_the_network_in_its_mode(saved_bilstm_crf, tmp_path):
    tagger = SequenceTagger.load(saved_bilstm_crf)
    for training in (True, False):
        tagger.train(training)  # (a static LM stays in eval mode either way)
        modes = [module.training for module in tagger.modules()]
        assert tagger.rnn.training is training
        exported_head(tagger, "fp32", tmp_path / f"graphs-{training}")
        assert [module.training for module in tagger.modules()] == modes


def test_the_head_fingerprint_follows_its_weights_not_the_lms(saved_bilstm_crf):
    tagger = SequenceTagger.load(saved_bilstm_crf)
    before = head_fingerprint(tagger)
    with torch.no_grad():
        _encoders(tagger)[0].lm.encoder.weight.add_(1.0)
    assert head_fingerprint(tagger) == before
    with torch.no_grad():
        tagger.rnn.weight_hh_l0_reverse[0, 0] += 1e-3
    assert head_fingerprint(tagger) != before


def test_torch_again_drops_the_head_session(saved_bilstm_crf):
    tagger = SequenceTagger.load(saved_bilstm_crf, backend="onnx", int8=True)
    assert isinstance(tagger.head_runner, OnnxHead)
    assert use_backend(tagger, "torch").head_runner is None


def test_auto_runs_a_fine_tuned_lm_in_torch_and_says_why(tmp_path, caplog):
    torch.manual_seed(0)
    encoder = ec.CharLMEncoder(make_lm(True, 16, seed=1), fine_tune=True)
    tagger = SequenceTagger([encoder], TagDictionary.for_labels(["PER"], "BIOES"), "ner", hidden_size=8)
    with pytest.raises(OnnxBackendError, match="a fine-tuned LM; it runs in torch"):
        use_backend(tagger, "onnx")
    assert use_backend(tagger, "auto").head_runner is None and encoder.runner is None
    assert "running the model in torch, not ONNX Runtime int8: " in caplog.text
