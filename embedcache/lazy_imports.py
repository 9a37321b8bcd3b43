"""Importing on first use, so that ``import embedcache`` and ``embedcache --version`` stay cheap.

``import flair`` takes seconds (it imports ``transformers`` and the rest of Flair) and ``import torch`` about
two; a script that reads a cache, a command that prints its version, and a prediction with an embedcache
model need neither Flair nor, for the first two, torch. Two tools keep it so:

- :func:`lazy_exports` gives a package a PEP 562 module ``__getattr__`` that imports a public name's
  module the first time the name is read (``embedcache.SequenceTagger`` imports
  ``embedcache.inference.tagger`` then, not at ``import embedcache``);
- :func:`is_instance_of` tells whether an object is of a class (a Flair class, an error class) without
  importing its module: an object of a class can only exist once the class's module has been imported, so
  when that module is not in ``sys.modules`` the answer is no.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package`` that import each public name on first use.

    Args:
        package: the ``__name__`` of the package.
        exports: public name → the module that defines it (absolute, or relative to ``package`` when it starts
            with a dot). A name the module does not define is the module itself: ``{"datasets":
            ".data.datasets"}`` exports a submodule.

    Example:
        >>> __getattr__, __dir__ = lazy_exports(__name__, {"Trainer": ".training.trainer"})  # doctest: +SKIP
    """
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(exports[name], package)
        value = getattr(module, name, module)
        namespace[name] = value  # the next read is a plain attribute lookup
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__


def is_instance_of(value: object, module: str, name: str) -> bool:
    """``isinstance(value, <module>.<name>)``, without importing ``module``.

    Example:
        >>> is_instance_of("text", "flair.data", "Sentence")
        False
    """
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(value, getattr(loaded, name))
