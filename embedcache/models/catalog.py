"""Models shipped inside the package, found by name: ``SequenceTagger.load("en-upos")`` as on the CLI.

A bundled model is a model directory under ``embedcache/models/bundled/<name>/``; a name is looked up only
when no file or directory of that name exists, so a local ``en-upos/`` directory always wins.
"""

from __future__ import annotations

from pathlib import Path

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent / "bundled"
DEFAULT_MODEL = "en-upos"


def available() -> list[str]:
    """Names of the bundled models, sorted.

    Example:
        >>> "en-upos" in available()  # doctest: +SKIP
        True
    """
    if not BUNDLED_MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_MODELS_DIR.iterdir() if (p / "config.json").is_file())


def bundled_model_path(name: str) -> Path:
    """The directory of the bundled model ``name``.

    Raises:
        FileNotFoundError: no such bundled model; the message lists the ones there are.
    """
    if name not in available():
        bundled = ", ".join(available()) or "none are installed"
        raise FileNotFoundError(
            f"{name}: no such model directory, and not a bundled model name (bundled: {bundled})"
        )
    return BUNDLED_MODELS_DIR / name


def resolve_model_path(spec: str | Path) -> Path:
    """``spec`` as a model directory: an existing path as given, else a bundled model of that name."""
    path = Path(spec)
    if path.exists() or len(path.parts) != 1:
        return path
    return bundled_model_path(path.name)
