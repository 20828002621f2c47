"""Data-loader defaults: chosen from the cores this process may use, only for flags the user left unset."""

from __future__ import annotations

import logging

import pytest
import torch

from segret_hf.training import loader_defaults
from segret_hf.training.arguments import parse_arguments
from segret_hf.training.loader_defaults import data_loader_defaults, log_data_loader_settings


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """Pretend to run on `cores` cores, with or without CUDA."""

    def configure(cores: int, cuda: bool = True) -> None:
        monkeypatch.setattr(loader_defaults.os, "sched_getaffinity", lambda pid: set(range(cores)))
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)

    return configure


def test_workers_come_from_the_cores_of_each_process(machine, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    machine(16)
    assert data_loader_defaults({}, world_size=1) == {
        "dataloader_num_workers": 15,  # one core stays with the training process
        "dataloader_persistent_workers": True,  # exact resume kept (tests/test_training.py)
        "dataloader_pin_memory": True,
        "dataloader_prefetch_factor": 4,
    }
    assert data_loader_defaults({}, world_size=4)["dataloader_num_workers"] == 3  # 4 processes share 16 cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # 8 processes on 4 machines: 2 share these 16 cores
    assert data_loader_defaults({}, world_size=8)["dataloader_num_workers"] == 7
    machine(128)
    assert data_loader_defaults({}, world_size=1)["dataloader_num_workers"] == loader_defaults.MAX_WORKERS


def test_one_core_loads_in_process_and_cpu_runs_do_not_pin(machine) -> None:  # noqa: ANN001
    machine(1, cuda=False)
    assert data_loader_defaults({}, world_size=1) == {
        "dataloader_num_workers": 0,
        "dataloader_persistent_workers": False,
        "dataloader_pin_memory": False,
        "dataloader_prefetch_factor": None,
    }
    machine(8, cuda=True)
    assert data_loader_defaults({"use_cpu": True}, world_size=1)["dataloader_pin_memory"] is False


def test_flags_the_user_set_are_kept_and_steer_the_others(machine) -> None:  # noqa: ANN001
    machine(16)
    chosen = data_loader_defaults({"dataloader_num_workers": 0, "dataloader_pin_memory": True}, world_size=1)
    assert chosen == {"dataloader_persistent_workers": False, "dataloader_prefetch_factor": None}
    chosen = data_loader_defaults({"dataloader_num_workers": 2, "dataloader_prefetch_factor": 8}, world_size=1)
    assert chosen == {"dataloader_persistent_workers": True, "dataloader_pin_memory": True}
    chosen = data_loader_defaults({"dataloader_num_workers": 2, "dataloader_persistent_workers": False}, world_size=1)
    assert chosen == {"dataloader_pin_memory": True, "dataloader_prefetch_factor": 4}


def test_training_arguments_get_the_defaults(machine, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    machine(6, cuda=False)
    args = parse_arguments(["--output_dir", "o", "--model_variant", "tiny"]).training
    assert (args.dataloader_num_workers, args.dataloader_persistent_workers) == (5, True)
    assert (args.dataloader_prefetch_factor, args.dataloader_pin_memory) == (4, False)
    with caplog.at_level(logging.INFO, logger="segret_hf"):
        log_data_loader_settings(args)
    assert "Data loader: 5 worker processes (6 cores available), persistent workers True" in caplog.text
    args = parse_arguments(["--output_dir", "o", "--model_variant", "tiny", "--dataloader_num_workers", "0"]).training
    assert (args.dataloader_num_workers, args.dataloader_persistent_workers) == (0, False)
    assert args.dataloader_prefetch_factor is None

    with caplog.at_level(logging.INFO, logger="segret_hf"):
        log_data_loader_settings(args)
    assert "Data loader: 0 worker processes (6 cores available)" in caplog.text
