"""embedcache: memory-exact, fast contextual string embeddings and sequence tagging on Flair char LMs."""

from embedcache.embeddings import (
    CharLMEmbeddings,
    CharLMEncoder,
    EmbeddingStack,
    TokenEmbedder,
    TokenVectors,
    WordEmbeddings,
)
from embedcache.settings import STORAGE_MODES, StorageMode, get_storage_mode, set_storage_mode, storage_mode

__version__ = "0.1.0"

__all__ = [
    "STORAGE_MODES",
    "CharLMEmbeddings",
    "CharLMEncoder",
    "EmbeddingStack",
    "StorageMode",
    "TokenEmbedder",
    "TokenVectors",
    "WordEmbeddings",
    "__version__",
    "get_storage_mode",
    "set_storage_mode",
    "storage_mode",
]
