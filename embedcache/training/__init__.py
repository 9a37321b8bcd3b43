"""Training and evaluating taggers."""

from embedcache.training.evaluation import Scores, evaluate_tags
from embedcache.training.trainer import Trainer, TrainingConfig, TrainingResult

__all__ = ["Scores", "Trainer", "TrainingConfig", "TrainingResult", "evaluate_tags"]
