"""The embedding cache: one contiguous, memory-exact store of token vectors on GPU, pinned CPU or disk.

See :class:`EmbeddingCache`; :func:`estimate` gives its exact size before building it.
"""

from embedcache.cache.budget import OverBudgetError, estimate
from embedcache.cache.embedding_cache import EmbeddingCache
from embedcache.cache.persist import CacheMissError, CacheWriteError, CorruptCacheError
from embedcache.cache.placement import PLACEMENTS, Placement

__all__ = [
    "PLACEMENTS",
    "CacheMissError",
    "CacheWriteError",
    "CorruptCacheError",
    "EmbeddingCache",
    "OverBudgetError",
    "Placement",
    "estimate",
]
