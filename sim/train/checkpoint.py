"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain Python values::

    format      "sim-checkpoint/1"
    step        optimiser steps done
    config      the resolved experiment config (YAML text)
    stepper     Stepper.state_dict(): the model weights and the normalisation statistics
    optimizer, scheduler   their state dicts
    rng         torch / numpy / python random states
    layout      {"in_channels", "out_channels", "history", "state_channels", "forcing_channels",
                 "in_fields", "out_fields", "group"}: checked against the data before use
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sim.io import atomic_output

__all__ = ["FORMAT", "CheckpointError", "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state"]

FORMAT = "sim-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, of another format, or of another model or layout."""


def rng_state() -> dict[str, Any]:
    """The torch, numpy and python random states, as tensors and plain values (safe to load)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (legacy global state)
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus the format tag) to ``path`` atomically, replacing an older checkpoint."""
    with atomic_output(path, overwrite=True) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``: no code runs while loading).

    Raises:
        CheckpointError: one line naming the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, pickle.UnpicklingError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or not a torch file: {first})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        got = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: expected a {FORMAT} checkpoint, got format {got!r}")
    return payload
