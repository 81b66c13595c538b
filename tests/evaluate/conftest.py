"""Tiny data and steppers for the evaluation tests: 16x16 Navier-Stokes data, code-driven toy steppers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

import sim
from sim.config import load_config
from sim.data import NS2DDataConfig, generate_ns2d
from sim.train import FieldStats, Stepper

HISTORY = 4


@pytest.fixture(scope="session")
def ns_data(tmp_path_factory) -> Path:
    """3 samples x 11 frames (t = 0, 0.1, ..., 1) of 2D Navier-Stokes on a 16x16 grid."""
    path = tmp_path_factory.mktemp("data") / "ns16.nc"
    config = load_config(
        NS2DDataConfig,
        None,
        [
            "solver.resolution=16",
            "resolution=16",
            "samples=3",
            "batch_size=3",
            "t_final=1.0",
            "record_every=0.1",
            "solver.dt=0.01",
            "device=cpu",
        ],
    )
    return generate_ns2d(config, path, progress=False)


def _stats(std: float, n: int = 1) -> FieldStats:
    return FieldStats(torch.zeros(n), torch.full((n,), std))


def model_stepper(config: str, *, history: int = HISTORY) -> Stepper:
    """A small stepper around ``configs/ns2d/<config>.yaml`` with 2 hidden fields and 1 block."""
    torch.manual_seed(0)
    model = sim.build_model(
        f"configs/ns2d/{config}.yaml",
        ["model.hidden=2", "model.blocks=1", f"model.in_fields={history + 1}x pseudoscalar"],
    )
    return Stepper(model, history=history, state=_stats(0.3), delta=_stats(0.05), forcing=_stats(0.1))


class CodeModel(nn.Module):
    """``next = last * (1 + c)`` where ``c`` is the spatial mean of the (normalised) forcing channel.

    A per-sample forcing that is constant ``c`` makes a sample steady (0), doubling (1) or overflowing
    (1e10 - 1) at known steps. Counts its calls.
    """

    def __init__(self, history: int):
        super().__init__()
        self.history, self.in_channels, self.out_channels = history, history + 1, 1
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T + 1, H, W] -> [B, 1, H, W]
        self.calls += 1
        T = self.history
        c = x[:, T : T + 1].mean(dim=(2, 3), keepdim=True)  # [B, 1, 1, 1]
        return x[:, T - 1 : T] * (1 + c)


def code_stepper(history: int = 2) -> Stepper:
    """A direct (non-residual) stepper around :class:`CodeModel`: unit statistics, so next = model output."""
    return Stepper(
        CodeModel(history),
        history=history,
        state=_stats(1.0),
        delta=_stats(1.0),
        forcing=_stats(1.0),
        residual=False,
    )


def write_code_data(path: Path, codes, *, frames: int = 6, n: int = 8, seed: int = 0) -> Path:
    """A data file with random vorticity and a per-sample constant forcing ``codes[s]``."""
    rng = np.random.default_rng(seed)
    S = len(codes)
    w = rng.standard_normal((S, frames, n, n)).astype(np.float32)
    forcing = np.broadcast_to(np.asarray(codes, dtype=np.float32)[:, None, None], (S, n, n)).copy()
    coords = (np.arange(n) + 0.5) / n
    xr.Dataset(
        {
            "vorticity": (("sample", "time", "y", "x"), w),
            "forcing": (("sample", "y", "x"), forcing),
        },
        coords={"sample": np.arange(S), "time": 0.5 * np.arange(frames), "y": coords, "x": coords},
        attrs={"length": 1.0},
    ).to_netcdf(path, engine="netcdf4")
    return path


@pytest.fixture(scope="session")
def make_model_stepper():
    """The factory :func:`model_stepper`."""
    return model_stepper


@pytest.fixture(scope="session")
def make_code_stepper():
    """The factory :func:`code_stepper`."""
    return code_stepper


@pytest.fixture(scope="session")
def make_code_data():
    """The factory :func:`write_code_data`."""
    return write_code_data
