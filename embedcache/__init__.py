"""embedcache: memory-exact, fast contextual string embeddings and sequence tagging on Flair char LMs.

The data flows one way: text → tokens (:mod:`embedcache.data`) → LM states → token vectors
(:mod:`embedcache.embeddings`) → cache (:mod:`embedcache.cache`) → batches → tagger (:mod:`embedcache.models`)
→ spans; :mod:`embedcache.training` drives it, :mod:`embedcache.settings` holds the storage mode.
"""

from embedcache.cache import EmbeddingCache, estimate
from embedcache.data import datasets
from embedcache.data.corpus import Corpus
from embedcache.data.sentence import TaggedSentence
from embedcache.embeddings import (
    CharLMEmbeddings,
    CharLMEncoder,
    EmbeddingStack,
    TokenEmbedder,
    TokenVectors,
    WordEmbeddings,
)
from embedcache.models.labels import TagDictionary
from embedcache.models.tagger import SequenceTagger
from embedcache.settings import STORAGE_MODES, StorageMode, get_storage_mode, set_storage_mode, storage_mode
from embedcache.training import Trainer

__version__ = "0.1.0"

__all__ = [
    "STORAGE_MODES",
    "CharLMEmbeddings",
    "CharLMEncoder",
    "Corpus",
    "EmbeddingCache",
    "EmbeddingStack",
    "SequenceTagger",
    "StorageMode",
    "TagDictionary",
    "TaggedSentence",
    "TokenEmbedder",
    "TokenVectors",
    "Trainer",
    "WordEmbeddings",
    "__version__",
    "datasets",
    "estimate",
    "get_storage_mode",
    "set_storage_mode",
    "storage_mode",
]
