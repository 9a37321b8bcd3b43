import pytest
import torch

import embedcache as ec
from embedcache.embeddings.stack import EmbeddingStack, as_stack
from tests.conftest import make_lm


def test_stack_concatenates_members_in_order_and_moves_with_to():
    forward, backward = ec.CharLMEmbeddings(make_lm(True, 16)), ec.CharLMEmbeddings(make_lm(False, 8))
    stack = EmbeddingStack([forward, backward])
    tokens = [["a", "stack"], ["of", "two"]]
    vectors = stack.embed_batch(tokens)
    assert stack.embedding_length == 24 and vectors.vectors.shape == (4, 24)
    assert torch.equal(vectors.vectors[:, :16], forward.embed_batch(tokens).vectors)
    assert torch.equal(vectors.vectors[:, 16:], backward.embed_batch(tokens).vectors)
    assert len(list(stack.parameters())) == len(list(forward.parameters())) + len(list(backward.parameters()))
    assert stack.is_static


def test_fingerprint_depends_on_members_and_their_order():
    a, b = ec.CharLMEmbeddings(make_lm(True, 8, seed=1)), ec.CharLMEmbeddings(make_lm(True, 8, seed=2))
    assert EmbeddingStack([a, b]).fingerprint() != EmbeddingStack([b, a]).fingerprint()
    assert EmbeddingStack([a, b]).fingerprint() == as_stack([a, b]).fingerprint()


def test_fine_tuned_members_make_the_stack_dynamic():
    assert not as_stack(ec.CharLMEmbeddings(make_lm(True, 8), fine_tune=True)).is_static


def test_bad_members_are_refused():
    with pytest.raises(ValueError, match="at least one"):
        EmbeddingStack([])
    with pytest.raises(TypeError, match=r"embeddings\[0\] is a str, not a TokenEmbedder"):
        EmbeddingStack(["not an embedder"])
