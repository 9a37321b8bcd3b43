"""Text in, sentences out: readers, writers and dataset loaders."""

from embedcache.data.conll import DataFormatError, read_column_file, read_conllu
from embedcache.data.sentence import TaggedSentence

__all__ = ["DataFormatError", "TaggedSentence", "read_column_file", "read_conllu"]
