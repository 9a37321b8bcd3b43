"""The embedding cache: one contiguous, memory-exact store of token vectors on GPU, pinned CPU or disk.

See :class:`EmbeddingCache`; :func:`estimate` gives its exact size before building it. Names are imported on
first use (:mod:`embedcache.lazy_imports`).
"""

from embedcache.lazy_imports import lazy_exports

_EXPORTS = {
    "PLACEMENTS": ".placement",
    "CacheMissError": ".persist",
    "CacheWriteError": ".persist",
    "CorruptCacheError": ".persist",
    "EmbeddingCache": ".embedding_cache",
    "OverBudgetError": ".budget",
    "Placement": ".placement",
    "estimate": ".budget",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
