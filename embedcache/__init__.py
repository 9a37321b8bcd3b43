"""embedcache: memory-exact, fast contextual string embeddings and sequence tagging on Flair char LMs.

The data flows one way: text → tokens (:mod:`embedcache.data`) → LM states → token vectors
(:mod:`embedcache.embeddings`) → cache (:mod:`embedcache.cache`) → batches → tagger (:mod:`embedcache.models`)
→ spans; :mod:`embedcache.training` drives it, :mod:`embedcache.settings` holds the storage mode.

``import embedcache`` imports none of that: each public name is imported on first use
(:mod:`embedcache.lazy_imports`), so a script that only reads a model or a cache never pays for Flair.
"""

from embedcache.lazy_imports import lazy_exports
from embedcache.version import __version__ as __version__

_EXPORTS = {
    "STORAGE_MODES": ".settings",
    "CharLMEmbeddings": ".embeddings.flair_faces",
    "CharLMEncoder": ".embeddings.charlm",
    "CharLanguageModel": ".embeddings.char_language_model",
    "Corpus": ".data.corpus",
    "EmbeddingCache": ".cache.embedding_cache",
    "EmbeddingStack": ".embeddings.stack",
    "Pipeline": ".inference.pipeline",
    "SequenceTagger": ".inference.tagger",
    "StorageMode": ".settings",
    "TagDictionary": ".models.labels",
    "TaggedSentence": ".data.sentence",
    "TokenEmbedder": ".embeddings.base",
    "TokenVectors": ".embeddings.base",
    "Trainer": ".training.trainer",
    "WordEmbeddings": ".embeddings.flair_faces",
    "WordVectors": ".embeddings.words",
    "datasets": ".data.datasets",
    "estimate": ".cache.budget",
    "get_storage_mode": ".settings",
    "models": ".models",
    "set_storage_mode": ".settings",
    "storage_mode": ".settings",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted([*_EXPORTS, "__version__"])
