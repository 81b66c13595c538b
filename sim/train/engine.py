"""The training engine: any one-step model, autoregressive losses, exact resume, data parallel.

``train(config, out_dir)`` fits a :class:`~sim.train.stepper.Stepper` around ``sim.build_model(config.model)``
on windows of a trajectory file and writes into ``out_dir``::

    config.yaml          the resolved experiment config
    log.csv              step, loss, unroll, lr, samples/s, val losses
    checkpoints/last.pt  weights, optimiser, scheduler, RNG states, step, config, statistics (atomic)
    loss.png             training and validation loss against step

Switches (``train:``): one-step teacher forcing (``unroll: 1``); a multi-step unrolled loss whose length
grows during training (``unroll``, ``unroll_every``); the pushforward trick (``pushforward``: the first
``k - 1`` steps run without gradient, the loss is on the last); training noise on the input history
(``noise_std``, in units of the state's scale, as in MeshGraphNets); residual or direct prediction
(``residual``); exact conservation of the domain mean (``conserve_mean``); fine-tuning
(``init_from``: a checkpoint of the same model whose weights and normalisation statistics start the run,
with a fresh optimiser and schedule, e.g. a one-step model trained on, as GraphCast does, with a longer
unroll).

Reproducible and resumable: the batch of step ``s`` and its noise depend only on ``(seed, s)``, so a run
stopped after a checkpoint and resumed with ``resume=True`` ends with the same weights as an
uninterrupted one. Under ``torchrun`` (``WORLD_SIZE > 1``) the global batch is split across processes
(gloo on CPU, NCCL on GPU) and gradients are averaged: the same losses as one process.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import xarray as xr
from torch import nn

from sim.config import ConfigError, dump_yaml, from_dict, write_config
from sim.data.cylinder import CylinderWindows, MeshBatch, collate_graphs
from sim.data.ns2d import DataFileError, NS2DWindows, vorticity_to_state
from sim.data.weather import WeatherWindows
from sim.groups.fields import FieldType
from sim.io import OutputError, atomic_output
from sim.models.registry import build_model
from sim.runtime import release_cpu_memory
from sim.train.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from sim.train.config import ExperimentConfig
from sim.train.mesh import build_mesh_stepper, mesh_signature, mesh_split, mesh_statistics, mesh_windows
from sim.train.stepper import FieldStats, MeshStepper, Stepper, field_stats
from sim.train.weather import (
    WeatherStepper,
    build_weather_stepper,
    weather_signature,
    weather_split,
    weather_windows,
)

__all__ = [
    "TrainResult",
    "build_stepper",
    "check_data_fits",
    "compute_statistics",
    "data_signature",
    "finished_run",
    "load_stepper",
    "train",
    "train_or_reuse",
]

LOG_FIELDS = ["step", "loss", "unroll", "lr", "samples_per_s", "val_loss_1", "val_loss_unroll"]


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or stopped) run reached."""

    out_dir: Path
    step: int
    loss: float
    val_loss_1: float
    checkpoint: Path


# ---------------------------------------------------------------------------------------------------------
# statistics and the stepper


def compute_statistics(
    path: str | os.PathLike,
    samples: range,
    *,
    stride: int,
    state_type: FieldType,
    forcing_type: FieldType,
    state: str = "vorticity",
) -> tuple[FieldStats, FieldStats, FieldStats]:
    """State, one-step-difference and forcing statistics of the training samples, one sample at a time
    (``state``: ``"vorticity"`` or ``"velocity"``, see :class:`~sim.data.ns2d.NS2DWindows`)."""
    with xr.open_dataset(path, engine="netcdf4", cache=False) as ds:
        length = float(ds.attrs.get("length", 1.0))
        s_sum = s_sq = d_sum = d_sq = 0.0
        s_n = d_n = 0
        for i in samples:
            w = torch.from_numpy(np.asarray(ds["vorticity"][i].values, dtype=np.float64))  # [T, y, x]
            x = vorticity_to_state(w, state, length)  # [T, C, y, x]
            s_sum, s_sq = s_sum + x.sum(dim=(0, 2, 3)), s_sq + (x**2).sum(dim=(0, 2, 3))  # [C]
            s_n += x[:, 0].numel()
            d = x[stride:] - x[:-stride]
            d_sum, d_sq = d_sum + d.sum(dim=(0, 2, 3)), d_sq + (d**2).sum(dim=(0, 2, 3))
            d_n += d[:, 0].numel()
        f = torch.from_numpy(np.asarray(ds["forcing"].values, dtype=np.float64))
        if ds["forcing"].ndim == 3:
            f = f[list(samples)]
    one = lambda v: torch.as_tensor(v, dtype=torch.float64).reshape(-1)  # noqa: E731
    state_stats = field_stats(one(s_sum), one(s_sq), s_n, state_type)
    delta = field_stats(one(d_sum), one(d_sq), max(d_n, 1), state_type)
    forcing = field_stats(one(f.sum()), one((f**2).sum()), f.numel(), forcing_type)
    return state_stats, delta, forcing


def build_stepper(config: ExperimentConfig, stats) -> Stepper | MeshStepper | WeatherStepper:
    """The model of ``config.model`` inside a Stepper with the given (state, delta, forcing) statistics;
    for a mesh model inside a :class:`MeshStepper` with the scales of ``mesh_statistics``; for a sphere
    model inside a :class:`~sim.train.weather.WeatherStepper` for the data ``stats`` describes
    (:func:`~sim.train.weather.weather_signature`)."""
    if config.model.is_sphere:
        return build_weather_stepper(config, stats)
    if config.model.is_mesh:
        return build_mesh_stepper(config, stats)
    model = build_model(config.model)
    state, delta, forcing = stats
    return Stepper(
        model,
        history=config.data.history,
        state=state,
        delta=delta,
        forcing=forcing,
        residual=config.train.residual,
        conserve_mean=config.train.conserve_mean,
        divergence_free=config.train.divergence_free,
    )


def _types(config: ExperimentConfig) -> tuple[FieldType, FieldType | None]:
    """Field types of the state (the model's output) and the forcing (the model's last input fields);
    ``(None, None)`` for sphere models (their channels come from the data)."""
    if config.model.is_sphere:
        return None, None
    group = config.model.planar_group()
    out_type = FieldType.parse(group, config.model.out_fields)
    in_type = FieldType.parse(group, config.model.in_fields)
    if config.model.is_mesh:  # the velocity history only (checked by ModelConfig and mesh_windows)
        return out_type, None
    n_state = config.data.history * out_type.num_fields
    if in_type.num_fields <= n_state or in_type.reps[:n_state] != out_type.reps * config.data.history:
        raise ConfigError(
            f"model.in_fields: expected {config.data.history} copies of out_fields "
            f"({config.model.out_fields}) followed by the forcing fields, got {config.model.in_fields!r}"
        )
    want = {"vorticity": ("1x pseudoscalar", "1x scalar"), "velocity": ("1x vector",)}[config.data.state]
    if not any(out_type == FieldType.parse(group, spec) for spec in want):
        raise ConfigError(
            f"model.out_fields: data.state {config.data.state!r} is {' or '.join(want)}, got "
            f"{config.model.out_fields!r}",
            key="model.out_fields",
        )
    return out_type, FieldType(group, in_type.reps[n_state:])


def data_signature(windows) -> dict:
    """What a stepper trained on ``windows`` assumes of any data it is later rolled out on.

    Returns:
        ``{"grid": [ny, nx], "length": domain side, "step_time": model time per step (frame interval x
        stride), "viscosity": ..., "drag": ..., "state": "vorticity" or "velocity"}``; a value the file
        does not record is None. Mesh windows: :func:`~sim.train.mesh.mesh_signature`.
    """
    if isinstance(windows, CylinderWindows):
        return mesh_signature(windows)
    if isinstance(windows, WeatherWindows):
        return weather_signature(windows)
    attrs = windows.attrs
    times = np.asarray(windows.times, dtype=np.float64)
    interval = float(times[1] - times[0]) if times.size > 1 else math.nan

    def number(key):
        value = attrs.get(key)
        return None if value is None else float(value)

    return {
        "grid": [int(n) for n in windows.grid_shape],
        "length": number("length"),
        "step_time": interval * windows.stride,
        "viscosity": number("viscosity"),
        "drag": number("drag"),
        "state": windows.state,
    }


def check_data_fits(trained: dict, windows: NS2DWindows, *, hint: str = "") -> None:
    """Raise unless ``windows`` has the grid, domain, time step and physics a stepper was trained on.

    Args:
        trained: ``data_signature`` of the training data (stored in checkpoints as ``"data"``).
        windows: the data to roll out on, with the stride the stepper was trained with.
        hint: appended to the message (e.g. how to override the check).

    Raises:
        DataFileError: one line naming the file, each value that differs and the value trained on.
    """
    got = data_signature(windows)
    diffs = []
    for key, want in trained.items():
        if key in _STATISTICS:  # the training data's normalization, not a property of the data to match
            continue
        have = got.get(key)
        if want is None or have is None:
            continue
        if isinstance(want, (int, float)) and isinstance(have, (int, float)):
            same = math.isclose(have, want, rel_tol=1e-6, abs_tol=1e-12)
        else:
            same = have == want
        if not same:
            diffs.append(f"{key} {have} (trained on {want})")
    if diffs:
        raise DataFileError(
            f"{windows.path}: does not fit the checkpoint's training data: {'; '.join(diffs)}{hint}"
        )


_STATISTICS = ("mean", "std", "diff_std")


def _layout(config: ExperimentConfig, stepper: Stepper) -> dict:
    if isinstance(stepper, WeatherStepper):
        return {
            "model": config.model.name,
            "history": stepper.history,
            "channels": stepper.channel_names,
            "forcings": stepper.forcing_names,
            "state_channels": stepper.state_channels,
            "forcing_channels": stepper.forcing_channels,
        }
    return {
        "in_fields": config.model.in_fields,
        "out_fields": config.model.out_fields,
        "group": config.model.group,
        "history": stepper.history,
        "state_channels": stepper.state_channels,
        "forcing_channels": stepper.forcing_channels,
    }


def load_stepper(path: str | os.PathLike, *, map_location="cpu") -> tuple[Stepper, ExperimentConfig, dict]:
    """A trained Stepper from a checkpoint, with its experiment config and the raw checkpoint dict.

    Raises:
        CheckpointError: unreadable, of another format, or weights that do not fit the stored config.
    """
    ckpt = load_checkpoint(path, map_location=map_location)
    import yaml

    config = from_dict(ExperimentConfig, yaml.safe_load(ckpt["config"]), source=f"{path} (stored config)")
    blank = lambda n: FieldStats(torch.zeros(n), torch.ones(n))  # noqa: E731 (the weights overwrite them)
    n_state, n_forcing = ckpt["layout"]["state_channels"], ckpt["layout"]["forcing_channels"]
    if config.model.is_sphere:
        stats = ckpt["data"]  # the signature rebuilds the stepper; its statistics come with the weights
    else:
        stats = None if config.model.is_mesh else (blank(n_state), blank(n_state), blank(n_forcing))
    stepper = build_stepper(config, stats)
    _load_weights(stepper, ckpt["stepper"], f"{path}: the weights do not fit the model of its config")
    return stepper.to(map_location), config, ckpt


def _load_weights(module: nn.Module, state: dict, problem: str) -> None:
    """``module.load_state_dict(state)``; weights that do not fit raise CheckpointError ``problem (why)``."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{problem} ({str(err).splitlines()[0]})") from None


# ---------------------------------------------------------------------------------------------------------
# data order


@functools.lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def batch_indices(step: int, *, batch: int, n: int, seed: int, rank: int = 0, world: int = 1) -> list[int]:
    """Window indices of this process's share of the global batch of ``step``: a fresh permutation of
    the ``n`` windows per epoch, a function of ``(seed, step)`` only."""
    per_rank = batch // world
    out = []
    for j in range(rank * per_rank, (rank + 1) * per_rank):
        epoch, offset = divmod(step * batch + j, n)
        out.append(int(_permutation(seed, epoch, n)[offset]))
    return out


class _StepBatches(torch.utils.data.Sampler):
    def __init__(self, start: int, stop: int, **kwargs):
        self.start, self.stop, self.kwargs = start, stop, kwargs

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            yield batch_indices(step, **self.kwargs)

    def __len__(self) -> int:
        return self.stop - self.start


# ---------------------------------------------------------------------------------------------------------
# the loop


def _schedule(config: ExperimentConfig):
    t = config.train

    def factor(step: int) -> float:
        if t.warmup_steps and step < t.warmup_steps:
            return (step + 1) / t.warmup_steps
        if t.schedule == "constant":
            return 1.0
        progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _split(batch, history: int, channels: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(history [B, T, C, y, x], forcing [B, F, y, x], target [B, K, C, y, x])`` of a batch of windows;
    for graph windows ``(history [N, T, 2], graph, target [N, K, 2])`` (``sim.train.mesh.mesh_split``)."""
    if isinstance(batch, MeshBatch):
        return mesh_split(batch, history, device)
    if len(batch) == 3:  # weather windows: (inputs, targets, forcings per target)
        return weather_split(batch, device)
    inputs, target = (b.to(device, non_blocking=True) for b in batch)  # [B, T*C+F, y, x], [B, K*C, y, x]
    B, _, H, W = inputs.shape
    n = history * channels
    return (
        inputs[:, :n].reshape(B, history, channels, H, W),
        inputs[:, n:],
        target.reshape(B, -1, channels, H, W),
    )


def _loss(
    stepper: nn.Module, core: Stepper, history, forcing, target, k: int, pushforward: bool
) -> torch.Tensor:
    """Normalised mean squared error of a ``k``-step unroll (only the last step with pushforward); over the
    stepper's ``loss_mask`` nodes when it has one (mesh steppers: not the boundary-condition nodes),
    weighted by its ``loss_weights`` when it has them (weather: cell areas). A stepper with
    ``forcing_at`` takes the forcings of each unrolled step from the window's (weather: per target time).
    """
    scale = core.state_std.reshape(1, -1, *([1] * (history.ndim - 3)))
    mask = core.loss_mask(forcing) if hasattr(core, "loss_mask") else None
    weights = core.loss_weights(forcing) if hasattr(core, "loss_weights") else None
    window, losses = history, []
    for i in range(k):
        f = core.forcing_at(forcing, i) if hasattr(core, "forcing_at") else forcing
        if pushforward and i < k - 1:
            with torch.no_grad():
                nxt = stepper(window, f)
        else:
            nxt = stepper(window, f)
            err = ((nxt - target[:, i]) / scale) ** 2
            if weights is not None:
                err = err * weights
            if mask is None:
                losses.append(err.mean())
            else:  # the mean over the masked nodes, without a data-dependent shape (runs on meta too)
                m = mask.reshape(*mask.shape, *([1] * (err.ndim - mask.ndim))).to(err.dtype)
                losses.append((err * m).sum() / (m.sum() * (err.numel() // m.numel())))
        window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
    return torch.stack(losses).mean()


def _validate(stepper: Stepper, loader, history: int, k: int, device, batches: int) -> tuple[float, float]:
    stepper.eval()
    one, many = [], []
    with torch.no_grad():
        for i, batch in enumerate(loader):
            if i >= batches:
                break
            h, f, target = _split(batch, history, stepper.state_channels, device)
            one.append(float(_loss(stepper, stepper, h, f, target, 1, False)))
            many.append(float(_loss(stepper, stepper, h, f, target, k, False)))
    stepper.train()
    return (float(np.mean(one)), float(np.mean(many))) if one else (math.nan, math.nan)


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if world > 1 else (0, 1)


def _device(name: str, rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device: expected an available device, got {name!r} (no CUDA device)")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def _prepare(config: ExperimentConfig) -> tuple:
    """``(train_set, val_set, data signature, stepper on the CPU)`` of an experiment: the windows with the
    longest unroll, the normalisation statistics of the training data, the stepper built on them (its
    parameters drawn after ``torch.manual_seed(train.seed)``)."""
    t, d = config.train, config.data
    state_type, forcing_type = _types(config)
    if config.model.is_sphere:
        train_set = weather_windows(config, "train", t.unroll)
        val_set = weather_windows(config, "val", t.unroll)
    elif not Path(d.path).is_file():
        kind = "cylinder" if config.model.is_mesh else "ns2d"
        raise DataFileError(f"{d.path}: no such data file (data.path); make one with `sim generate {kind}`")
    elif config.model.is_mesh:
        train_set = mesh_windows(config, range(*d.train_samples), t.unroll)
        val_set = mesh_windows(config, range(*d.val_samples), t.unroll)
    else:
        windows = dict(history=d.history, horizon=t.unroll, stride=d.stride, state=d.state)
        train_set = NS2DWindows(d.path, samples=range(*d.train_samples), **windows)
        val_set = NS2DWindows(d.path, samples=range(*d.val_samples), **windows)
    grid_model = not (config.model.is_mesh or config.model.is_sphere)
    if grid_model and train_set.in_channels != d.history * state_type.dim + forcing_type.dim:
        raise DataFileError(
            f"{d.path}: windows have {train_set.in_channels} input channels, the model expects "
            f"{d.history * state_type.dim + forcing_type.dim}"
        )

    torch.manual_seed(t.seed)
    signature = data_signature(train_set)  # stored in every checkpoint, for rollouts to check
    if config.model.is_sphere:
        stats = signature
    elif config.model.is_mesh:
        stats = mesh_statistics(config)
    else:
        stats = compute_statistics(
            d.path,
            range(*d.train_samples),
            stride=d.stride,
            state_type=state_type,
            forcing_type=forcing_type,
            state=d.state,
        )
    return train_set, val_set, signature, build_stepper(config, stats)


def training_memory(config: ExperimentConfig, *, unroll: int | None = None) -> dict:
    """The peak memory of one training step of ``config``, counted without running it.

    The step at the config's batch size and longest unroll (``train.unroll``, or ``unroll``): forward over
    the unrolled steps, the loss, backward and the AdamW update, run on the ``meta`` device (shapes only;
    seconds even for a model that would not fit here) while :class:`sim.runtime.LiveTensorBytes` counts
    every tensor from its creation until it is freed: parameters, optimizer state, inputs, activations and
    gradients. The peak is what ``torch.cuda.max_memory_allocated`` reports for the same step on a GPU, less
    allocator rounding and library workspaces. The data is read for one batch of windows and the
    normalisation statistics, as training would.

    Returns:
        ``{"peak": bytes, "parameters": count, "parameter_bytes": bytes, "batch": B, "unroll": k}``.
    """
    from torch.utils.data import default_collate

    from sim.runtime import LiveTensorBytes

    t, d = config.train, config.data
    k = t.unroll if unroll is None else int(unroll)
    if not 1 <= k <= t.unroll:
        raise ConfigError(f"unroll: expected 1 <= unroll <= train.unroll = {t.unroll}, got {unroll}")
    train_set, _, _, core = _prepare(config)
    if len(train_set) == 0:
        raise DataFileError(f"{d.path}: no training windows for this config")
    collate = collate_graphs if config.model.is_mesh else default_collate
    batch = collate([train_set[i % len(train_set)] for i in range(t.batch_size)])
    meta = torch.device("meta")
    with LiveTensorBytes() as mem:
        core = core.to(meta)
        optimizer = torch.optim.AdamW(core.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        history, forcing, target = _split(batch, d.history, core.state_channels, meta)
        _loss(core, core, history, forcing, target, k, t.pushforward).backward()
        optimizer.step()
    params = list(core.parameters())
    return {
        "peak": mem.peak,
        "parameters": sum(p.numel() for p in params),
        "parameter_bytes": sum(p.numel() * p.element_size() for p in params),
        "batch": t.batch_size,
        "unroll": k,
    }


def train(
    config: ExperimentConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train ``config`` and write the run into ``out_dir`` (see the module docstring).

    Args:
        config: the experiment.
        out_dir: the run folder; must not exist (or be empty) unless ``resume`` or ``overwrite``.
        resume: continue from ``out_dir/checkpoints/last.pt`` to ``config.train.steps``.
        overwrite: start afresh in an existing folder.
        progress: show a progress bar.
        stop_after: stop (with a checkpoint) after this many steps of this call, e.g. to fit a time limit.

    Returns:
        A :class:`TrainResult`.

    Raises:
        OutputError, DataFileError, CheckpointError, ConfigError: one-line problems with the inputs.
    """
    from tqdm.auto import tqdm

    rank, world = _distributed()
    t, d = config.train, config.data
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "checkpoints" / "last.pt"
    if t.batch_size % world:
        raise ConfigError(
            f"train.batch_size: expected a multiple of the {world} processes, got {t.batch_size}"
        )
    if resume and not ckpt_path.is_file():
        raise OutputError(f"{out_dir}: nothing to resume ({ckpt_path} does not exist)")
    if not resume and out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise OutputError(f"{out_dir}: already exists and is not empty (pass --overwrite or --resume)")
    if not out_dir.parent.is_dir():
        raise OutputError(f"{out_dir}: parent folder {out_dir.parent} does not exist")
    device = _device(t.device, rank)
    train_set, val_set, signature, core = _prepare(config)
    core = core.to(device)
    stepper: nn.Module = core
    if world > 1:
        stepper = nn.parallel.DistributedDataParallel(
            core, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = torch.optim.AdamW(core.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    start, prior_seconds = 0, 0.0
    if t.init_from is not None and not resume:  # a resumed run's own checkpoint already holds them
        _load_run_weights(core, Path(t.init_from), _layout(config, core), device, what="train.init_from: ")
    if resume:
        ckpt = _load_run_weights(core, ckpt_path, _layout(config, core), device)
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        start = int(ckpt["step"])
        prior_seconds = float(ckpt.get("train_seconds", math.nan))
        if rank == 0:
            write_config(config, out_dir / "config.yaml")  # as resumed (overrides included)
            _truncate_log(out_dir, start)  # rows logged after the checkpoint are logged again
    elif rank == 0:
        out_dir.mkdir(exist_ok=True)
        (out_dir / "checkpoints").mkdir(exist_ok=True)
        write_config(config, out_dir / "config.yaml")
        with open(out_dir / "log.csv", "w", newline="") as fh:
            csv.writer(fh).writerow(LOG_FIELDS)
    if world > 1:
        dist.barrier()

    stop = t.steps if stop_after is None else min(t.steps, start + stop_after)
    sampler = _StepBatches(
        start, stop, batch=t.batch_size, n=len(train_set), seed=t.seed, rank=rank, world=world
    )
    collate = collate_graphs if config.model.is_mesh else None  # graphs: one big graph per batch
    loader = torch.utils.data.DataLoader(
        train_set, batch_sampler=sampler, num_workers=d.num_workers, collate_fn=collate
    )
    val_loader = torch.utils.data.DataLoader(
        val_set,
        batch_size=max(1, t.batch_size // world),
        shuffle=False,
        num_workers=d.num_workers,
        collate_fn=collate,
    )
    loss_value, val1, valk = math.nan, math.nan, math.nan
    bar = tqdm(
        total=t.steps,
        initial=start,
        unit="step",
        desc="train",
        disable=not progress or rank != 0,
        dynamic_ncols=True,
    )
    tick, seen = time.perf_counter(), 0
    began = tick  # the wall time of this call, added to the checkpoint's "train_seconds"
    stepper.train()
    step = start
    for step, batch in zip(range(start, stop), loader, strict=True):
        k = t.unroll_at(step)
        history, forcing, target = _split(batch, d.history, core.state_channels, device)
        if t.noise_std > 0:
            gen = torch.Generator(device=device).manual_seed(t.seed * 7_919 + step * 104_729 + rank)
            noise = torch.randn(history.shape, generator=gen, device=device, dtype=history.dtype)
            if hasattr(core, "noise_mask"):  # mesh steppers: the fluid nodes only
                noise = noise * core.noise_mask(forcing)[:, None, None]
            scale = core.state_std.reshape(1, 1, -1, *([1] * (history.ndim - 3)))
            history = history + t.noise_std * scale * noise
        loss = _loss(stepper, core, history, forcing, target, k, t.pushforward)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip:
            nn.utils.clip_grad_norm_(core.parameters(), t.grad_clip)
        optimizer.step()
        scheduler.step()
        reported = loss.detach()
        if world > 1:  # the loss of the global batch, as one process would report it
            reported = reported.clone()
            dist.all_reduce(reported)
            reported /= world
        loss_value = float(reported)
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f"training diverged: loss is {loss_value} at step {step + 1}; lower train.lr"
            )
        seen += t.batch_size // world * world
        done = step + 1
        bar.update(1)
        last = done == stop
        validated = done % t.val_every == 0 or done == t.steps
        if validated:
            val1, valk = _validate(core, val_loader, d.history, t.unroll, device, t.val_batches)
        if done % t.log_every == 0 or last or validated:
            rate = seen / max(time.perf_counter() - tick, 1e-9)
            tick, seen = time.perf_counter(), 0
            lr = scheduler.get_last_lr()[0]
            # written at once, so that the log can be watched; a resume drops what follows its checkpoint
            if rank == 0:
                vals = (val1, valk) if validated else (math.nan, math.nan)
                _append_log(out_dir, [[done, loss_value, k, lr, rate, *vals]])
            bar.set_postfix(loss=f"{loss_value:.3g}", unroll=k, val=f"{val1:.3g}", rate=f"{rate:.0f}/s")
        if rank == 0 and (done % t.checkpoint_every == 0 or last):
            save_checkpoint(
                ckpt_path,
                {
                    "step": done,
                    "config": dump_yaml(config),
                    "stepper": core.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": rng_state(),
                    "layout": _layout(config, core),
                    "data": signature,
                    "metrics": {"loss": loss_value, "val_loss_1": val1},
                    "train_seconds": prior_seconds + (time.perf_counter() - began),
                },
            )
    bar.close()
    if rank == 0:
        _plot_log(out_dir)
    return TrainResult(out_dir, stop, loss_value, val1, ckpt_path)


def _load_run_weights(core: nn.Module, path: Path, layout: dict, device, *, what: str = "") -> dict:
    """Load the stepper weights (and statistics) of the checkpoint ``path`` into ``core``, for a resumed run
    or ``init_from``; returns the checkpoint. ``what`` starts the error messages.

    Raises:
        CheckpointError: an unreadable checkpoint, or one of another data layout or model.
    """
    ckpt = load_checkpoint(path, map_location=device)
    if ckpt["layout"] != layout:
        raise CheckpointError(
            f"{what}{path} was made for layout {ckpt['layout']}, this config gives {layout}"
        )
    _load_weights(core, ckpt["stepper"], f"{what}{path} holds weights of another model")
    return ckpt


def _append_log(out_dir: Path, rows: list[list]) -> None:
    if rows:
        with open(out_dir / "log.csv", "a", newline="") as fh:
            csv.writer(fh).writerows(rows)


def _truncate_log(out_dir: Path, step: int) -> None:
    """Drop the rows of ``log.csv`` after ``step`` (those of a run stopped after its last checkpoint);
    rewritten atomically. A missing log is started."""
    path = out_dir / "log.csv"
    rows = []
    if path.is_file():
        with open(path, newline="") as fh:
            rows = [r for r in csv.reader(fh)][1:]
    kept = [r for r in rows if r and r[0].isdigit() and int(r[0]) <= step]
    if path.is_file() and len(kept) == len(rows):
        return
    with atomic_output(path, overwrite=True) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(LOG_FIELDS)
        writer.writerows(kept)


def _plot_log(out_dir: Path) -> None:
    from sim.plotting import save_curves

    with open(out_dir / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    curves = {"train": [float(r["loss"]) for r in rows], "val 1-step": [float(r["val_loss_1"]) for r in rows]}
    save_curves(
        steps,
        curves,
        out_dir / "loss.png",
        xlabel="step",
        ylabel="normalised MSE",
        logy=True,
        title=f"training: {out_dir.name}",
        overwrite=True,
    )


_TRAIN_SECONDS = "study_train_seconds.txt"  # beside a run: its wall time, for studies that reuse runs


def finished_run(run: str | os.PathLike, config: ExperimentConfig) -> tuple[Path | None, float]:
    """A finished training run of ``config`` in folder ``run`` (for studies that reuse runs): the same
    experiment up to how often it logged, validated and checkpointed, and on which device.

    Returns:
        ``(checkpoint, train_seconds)``: the checkpoint when it holds ``config`` trained to
        ``config.train.steps``, else None; its training wall time, summed over resumed parts (NaN when
        not recorded).
    """
    ckpt, step, seconds = _run_state(run, config)
    return (ckpt, seconds) if ckpt is not None and step == config.train.steps else (None, math.nan)


_BOOKKEEPING = ("log_every", "val_every", "val_batches", "checkpoint_every", "device")


def _same_training(stored: ExperimentConfig, config: ExperimentConfig) -> bool:
    """The same experiment up to bookkeeping that does not change the weights (how often to log,
    validate and checkpoint, the device, data-loader workers)."""
    keep = {k: getattr(config.train, k) for k in _BOOKKEEPING}
    data = dataclasses.replace(stored.data, num_workers=config.data.num_workers)
    return dataclasses.replace(stored, train=dataclasses.replace(stored.train, **keep), data=data) == config


def _run_state(run: str | os.PathLike, config: ExperimentConfig) -> tuple[Path | None, int, float]:
    """``(checkpoint, step, train_seconds)`` of a run of exactly ``config`` in ``run``; ``(None, 0, nan)``
    when there is none."""
    ckpt = Path(run) / "checkpoints" / "last.pt"
    if not ckpt.is_file():
        return None, 0, math.nan
    try:
        _, stored, raw = load_stepper(ckpt)
    except CheckpointError:
        return None, 0, math.nan
    if not _same_training(stored, config) or int(raw["step"]) > config.train.steps:
        return None, 0, math.nan
    seconds = float(raw.get("train_seconds", math.nan))
    timing = Path(run) / _TRAIN_SECONDS  # runs written before checkpoints carried their time
    if not math.isfinite(seconds) and timing.is_file():
        seconds = float(timing.read_text())
    return ckpt, int(raw["step"]), seconds


def train_or_reuse(
    config: ExperimentConfig,
    run: str | os.PathLike,
    *,
    reuse: bool,
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[Path, float, bool]:
    """Train ``config`` into ``run`` and record its wall time, or, with ``reuse``, keep a finished run of
    exactly this config (:func:`finished_run`) or resume an unfinished one from its last checkpoint (a
    study stopped part way goes on where it was); a run of another config is replaced.

    Returns:
        ``(checkpoint, train_seconds, reused)``: ``reused`` when nothing was trained; ``train_seconds``
        summed over the resumed parts.
    """
    ckpt, step, seconds = _run_state(run, config) if reuse else (None, 0, math.nan)
    if ckpt is not None and step == config.train.steps:
        return ckpt, seconds, True
    resume = ckpt is not None
    ckpt = train(config, run, resume=resume, overwrite=(overwrite or reuse) and not resume, progress=progress)
    ckpt = ckpt.checkpoint
    release_cpu_memory()  # a study's next model should not start with this training's peak resident
    seconds = _run_state(run, config)[2]
    with atomic_output(Path(run) / _TRAIN_SECONDS, overwrite=True) as tmp:
        tmp.write_text(f"{seconds:.3f}\n")
    return ckpt, seconds, False
