"""Lazy exports: every public name of every package resolves on first use, to what its module defines."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

from embedcache.lazy_imports import is_instance_of

PACKAGES = [
    "embedcache",
    "embedcache.cache",
    "embedcache.embeddings",
    "embedcache.models",
    "embedcache.training",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves_and_is_listed(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        assert name in ("datasets", "models") or not isinstance(value, types.ModuleType), name
        assert name in dir(module)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'Nope'"):
        module.Nope  # noqa: B018 - the attribute access is the test


def test_bundled_models_are_listed_from_a_fresh_interpreter():
    code = "import embedcache as ec; print(ec.models.available())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "['en-upos']\n"


def test_old_homes_of_the_flair_faces_still_export_them():
    from embedcache.embeddings.charlm import CharLMEmbeddings
    from embedcache.embeddings.flair_faces import CharLMEmbeddings as face
    from embedcache.embeddings.words import WordEmbeddings

    assert CharLMEmbeddings is face and WordEmbeddings.__module__ == "embedcache.embeddings.flair_faces"


def test_is_instance_of_checks_only_modules_already_imported():
    assert is_instance_of(KeyError("x"), "builtins", "LookupError")
    assert not is_instance_of(KeyError("x"), "builtins", "ValueError")
    assert not is_instance_of(object(), "a_module_never_imported", "Anything")
