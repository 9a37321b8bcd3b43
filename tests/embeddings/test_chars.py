import torch
from flair.data import Dictionary

from embedcache.embeddings.chars import CharIndex
from tests.conftest import make_dictionary


def flair_ids(dictionary: Dictionary, strings: list[str]) -> torch.Tensor:
    """Flair's own conversion and padding (LanguageModel.get_representation)."""
    width = max(map(len, strings))
    pad = dictionary.get_idx_for_item(" ")
    rows = [dictionary.get_idx_for_items(list(s)) + [pad] * (width - len(s)) for s in strings]
    return torch.tensor(rows, dtype=torch.long)


def test_ids_and_padding_equal_flairs_for_known_and_unknown_characters():
    dictionary = make_dictionary()
    strings = ["\nHello world! ", "\n😀 東京 \x00\x07\u200b\u0301 ", "\n ", "\n" + "x" * 300 + " "]
    assert torch.equal(CharIndex(dictionary).encode_padded(strings), flair_ids(dictionary, strings))


def test_unknown_characters_map_to_id_zero_which_is_unk():
    dictionary = make_dictionary("ab")
    index = CharIndex(dictionary)
    assert dictionary.get_item_for_index(0) == "<unk>"
    assert index.ids_of("a😀b\ud800").tolist() == [1, 0, 2, 0]  # emoji and a lone surrogate are unknown


def test_padding_id_is_unk_when_the_dictionary_has_no_space():
    index = CharIndex(make_dictionary("ab"))
    assert index.padding_id == 0
    assert index.encode_padded(["ab", "a"]).tolist() == [[1, 2], [1, 0]]


def test_empty_batch_gives_an_empty_matrix():
    assert CharIndex(make_dictionary()).encode_padded([]).shape == (0, 0)
