"""Shared test setup: one torch thread, a private cache folder."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):  # noqa: D103
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SCE_CACHE_DIR", str(tmp_path_factory.mktemp("sce-cache")))


@pytest.fixture
def cache(tmp_path_factory, monkeypatch):
    """One cache folder for the whole session: tiny demo datasets are generated once."""
    path = tmp_path_factory.getbasetemp() / "shared-cache"
    monkeypatch.setenv("SCE_CACHE_DIR", str(path))
    return path
