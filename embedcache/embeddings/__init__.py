"""Token embedders: character-LM (contextual string) embeddings and static word vectors.

The names are imported on first use (:mod:`embedcache.lazy_imports`): the native cores import torch, the
Flair faces (``CharLMEmbeddings``, ``WordEmbeddings``) import Flair, and only what is used is paid for.
"""

from embedcache.lazy_imports import lazy_exports

_EXPORTS = {
    "CharLanguageModel": ".char_language_model",
    "CharLMEmbeddings": ".flair_faces",
    "CharLMEncoder": ".charlm",
    "EmbeddingStack": ".stack",
    "TokenEmbedder": ".base",
    "TokenVectors": ".base",
    "WordEmbeddings": ".flair_faces",
    "WordVectors": ".words",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
