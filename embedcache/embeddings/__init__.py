"""Token embedders: character-LM (contextual string) embeddings and static word vectors."""

from embedcache.embeddings.base import TokenEmbedder, TokenVectors
from embedcache.embeddings.charlm import CharLMEmbeddings, CharLMEncoder

__all__ = ["CharLMEmbeddings", "CharLMEncoder", "TokenEmbedder", "TokenVectors"]
