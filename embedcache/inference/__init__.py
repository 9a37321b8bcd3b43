"""The predict path, a layer above the models: the predict driver, its memory budget, pipelines of taggers
sharing their embedders, and the output writers (CoNLL, JSONL, inline markup)."""
