"""Training and evaluating taggers. Names are imported on first use (:mod:`embedcache.lazy_imports`)."""

from embedcache.lazy_imports import lazy_exports

_EXPORTS = {
    "Scores": ".evaluation",
    "Trainer": ".trainer",
    "TrainingConfig": ".config",
    "TrainingResult": ".trainer",
    "evaluate_tags": ".evaluation",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
