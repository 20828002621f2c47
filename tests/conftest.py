"""Fixtures every test module shares."""

from __future__ import annotations

import datasets
import pytest


@pytest.fixture(scope="module", autouse=True)
def datasets_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep `load_dataset`'s Arrow cache out of the user's home directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf_datasets_cache"))
        yield
