"""Token embedders: character-LM (contextual string) embeddings and static word vectors."""

from embedcache.embeddings.base import TokenEmbedder, TokenVectors
from embedcache.embeddings.charlm import CharLMEmbeddings, CharLMEncoder
from embedcache.embeddings.stack import EmbeddingStack
from embedcache.embeddings.words import WordEmbeddings

__all__ = [
    "CharLMEmbeddings",
    "CharLMEncoder",
    "EmbeddingStack",
    "TokenEmbedder",
    "TokenVectors",
    "WordEmbeddings",
]
