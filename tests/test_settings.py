import pytest

import embedcache as ec
from embedcache.settings import DEFAULT_STORAGE_MODE


def test_default_is_the_retain_safe_mode():
    assert ec.get_storage_mode() == DEFAULT_STORAGE_MODE == "gpu"


@pytest.mark.parametrize("mode", ["none", "cpu", "gpu"])
def test_set_returns_previous_and_get_reads_back(mode):
    previous = ec.set_storage_mode(mode)
    try:
        assert ec.get_storage_mode() == mode
    finally:
        ec.set_storage_mode(previous)
    assert ec.get_storage_mode() == previous


@pytest.mark.parametrize("bad", ["disk", "GPU", "", None, 1])
def test_unknown_mode_is_refused_with_the_valid_ones_listed(bad):
    with pytest.raises(ValueError, match="'none', 'cpu', 'gpu'"):
        ec.set_storage_mode(bad)
    assert ec.get_storage_mode() == DEFAULT_STORAGE_MODE


def test_context_manager_restores_on_exit_and_on_exception():
    with ec.storage_mode("none") as mode:
        assert mode == ec.get_storage_mode() == "none"
        with ec.storage_mode("cpu"):
            assert ec.get_storage_mode() == "cpu"
        assert ec.get_storage_mode() == "none"
    assert ec.get_storage_mode() == DEFAULT_STORAGE_MODE
    with pytest.raises(RuntimeError), ec.storage_mode("cpu"):
        raise RuntimeError("boom")
    assert ec.get_storage_mode() == DEFAULT_STORAGE_MODE


def test_context_manager_rejects_unknown_mode_before_changing_anything():
    with pytest.raises(ValueError), ec.storage_mode("everything"):
        pass
    assert ec.get_storage_mode() == DEFAULT_STORAGE_MODE
