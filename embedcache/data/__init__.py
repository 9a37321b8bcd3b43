"""Text in, sentences out: readers, tokenizers and dataset loaders (the output writers are in
:mod:`embedcache.inference`)."""

from embedcache.data.conll import DataFormatError, read_column_file, read_conllu
from embedcache.data.sentence import TaggedSentence

__all__ = ["DataFormatError", "TaggedSentence", "read_column_file", "read_conllu"]
