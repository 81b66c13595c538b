"""Long autoregressive rollouts of a one-step ``Stepper``, streamed to a netCDF file chunk by chunk.

File layout (netCDF-4)::

    dimensions:  sample, lead_time, y, x
    vorticity(sample, lead_time, y, x)  float32   the predicted states (a velocity stepper's as their
                                                  vorticity), NaN from a sample's divergence on
    diverged_at(sample)                 int32     first lead at which the sample diverged, -1 if never
    initial_max_abs(sample)             float32   max |w| over the initial frames (the blow-up reference)
    coordinates: sample (indices of the data file), lead_time (1..steps, model steps),
                 lead_model_time(lead_time) = lead_time x stride x the data's frame interval,
                 time(lead_time) = the data file's time of the predicted frame, y, x
    attributes:  data_file, state, start, history, stride, steps, element, element_name, group, frame_interval
                 (of the rollout: stride x the data's), init_time, blowup_factor, sim_version, created,
                 and the caller's ``attrs``

Lead ``l`` of a rollout from frame ``start`` with ``stride`` ``s`` predicts the data file's frame
``start + (history - 1 + l) * s``: a model trained on every ``s``-th frame steps ``s`` frames at a time.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from sim import __version__
from sim.data.ns2d import DataFileError, state_to_vorticity, vorticity_to_state
from sim.evaluate._common import (
    GROUP,
    check_blowup_factor,
    check_element,
    check_extra_attrs,
    check_history_fits,
    check_int,
    check_samples,
    element_name,
    open_source,
    read_frames,
    transform_vorticity,
)
from sim.io import atomic_output, check_output_path
from sim.train.stepper import Stepper

__all__ = ["rollout_to_netcdf"]

_RESERVED_ATTRS = frozenset(
    {
        "title",
        "state",
        "state_note",
        "data_file",
        "start",
        "history",
        "stride",
        "steps",
        "element",
        "element_name",
        "group",
        "frame_interval",
        "init_time",
        "blowup_factor",
        "divergence",
        "lead_convention",
        "sim_version",
        "created",
    }
)


def rollout_to_netcdf(
    stepper: Stepper,
    data_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    steps: int,
    samples: Sequence[int] | None = None,
    start: int = 0,
    stride: int = 1,
    element: int | None = None,
    batch_size: int = 8,
    chunk: int = 32,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
    progress: bool = True,
    blowup_factor: float = 100.0,
    attrs: Mapping[str, str | int | float] | None = None,
) -> Path:
    """Roll a stepper out autoregressively for ``steps`` steps and stream the states to netCDF.

    For each sample, the ``stepper.history`` frames ``start, start + stride, ..., start + (history - 1) *
    stride`` of the data file and that sample's forcing start the rollout; with ``element`` both are
    first transformed by that D4 element (vorticity and forcing are pseudoscalars), so the rollout can
    be compared with the transformed truth. Samples run in batches of ``batch_size``; each batch's
    states are gathered in a buffer of ``chunk`` steps and written when it fills, so memory does not
    grow with ``steps``. The file is written under a temporary name and renamed when complete: an
    interrupted run leaves no file that looks whole.

    Divergence, per sample: a state with NaN/Inf, or with ``max |w|`` above ``blowup_factor`` times the
    max ``|w|`` of its initial frames (only NaN/Inf count when those are all zero). The first such lead
    goes to ``diverged_at``; that lead and all later ones of the sample are written as NaN; the other
    samples continue. A batch stops computing once all its samples have diverged.

    Args:
        stepper: the one-step model, ``[B, T, 1, H, W], [B, F, H, W] -> [B, 1, H, W]`` with ``F`` 0 or 1.
            It is moved to ``device`` and run in eval mode (its training flag is restored afterwards).
        data_path: a 2D Navier-Stokes data file (``sim.data.ns2d`` layout).
        out_path: the netCDF file to write; its folder must exist.
        steps: number of autoregressive steps (>= 1).
        samples: indices along the data file's ``sample`` dimension; all when None.
        start: first initial frame (the rollout starts after frame ``start + (history - 1) * stride``).
        stride: data frames per model step, as the model was trained (``data.stride`` of its config).
        element: a D4 element ``0..7`` (see ``sim.groups.planar``) applied to the initial frames and the
            forcing, or None.
        batch_size: samples rolled out together.
        chunk: steps buffered between writes (also the file's chunk length along ``lead_time``).
        device: where the stepper runs.
        overwrite: replace an existing ``out_path``.
        progress: show a progress bar on stderr.
        blowup_factor: the blow-up threshold relative to the initial ``max |w|`` (> 1).
        attrs: extra global attributes (str, int or float), e.g. the model name and checkpoint.

    Returns:
        The path written.

    Raises:
        OutputError: the folder is missing or the file exists without ``overwrite``.
        DataFileError: the data file is missing, not in the expected layout or too short for ``start``.
        ValueError: a bad argument or a stepper that does not predict one vorticity channel.
    """
    from tqdm.auto import tqdm

    out = check_output_path(out_path, overwrite=overwrite)  # fail before any work
    steps = check_int("steps", steps, minimum=1)
    start = check_int("start", start, minimum=0)
    stride = check_int("stride", stride, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    chunk = check_int("chunk", chunk, minimum=1)
    g = check_element(element)
    blowup_factor = check_blowup_factor(blowup_factor)
    extra = check_extra_attrs(attrs, _RESERVED_ATTRS, who="rollout_to_netcdf")
    T, C, F = stepper.history, stepper.state_channels, stepper.forcing_channels
    if C not in (1, 2) or F not in (0, 1):
        raise ValueError(
            "stepper: expected 1 state channel (vorticity) or 2 (velocity) and 0 or 1 forcing channels, "
            f"got {C} and {F}"
        )
    state = "velocity" if C == 2 else "vorticity"
    src = open_source(data_path)
    if state == "velocity" and (src.ny != src.nx or "length" not in src.attrs):
        raise DataFileError(
            f"{src.path}: a velocity stepper needs a square grid and a 'length' attribute, got "
            f"{src.ny}x{src.nx} and length={src.attrs.get('length')!r}"
        )
    to_vorticity = functools.partial(state_to_vorticity, state=state, length=src.attrs.get("length", 1.0))
    check_history_fits(src.path, src.n_frames, start=start, history=T, stride=stride)
    if F and not src.has_forcing:
        raise DataFileError(f"{src.path}: no 'forcing' variable, but the stepper takes a forcing channel")
    if src.ny != src.nx and g % 2 == 1:
        raise ValueError(
            f"element {g} turns the grid by 90 degrees; needs a square grid, got {src.ny}x{src.nx}"
        )
    picks = check_samples(samples, src.n_samples)

    device = torch.device(device)
    dtype = stepper.state_mean.dtype
    was_training = stepper.training
    stepper.to(device).eval()
    S, H, W = picks.size, src.nx if g % 2 else src.ny, src.ny if g % 2 else src.nx
    init_time = float(src.times[start + (T - 1) * stride])
    interval = src.frame_interval * stride
    meta = {
        "title": "autoregressive rollout of a sim Stepper (2D Navier-Stokes vorticity)",
        "state": state,
        "state_note": (
            "the stepper's state; a velocity state is stepped as (u, v) and written as its vorticity "
            "dv/dx - du/dy (spectral)"
        ),
        "data_file": str(src.path.resolve()),
        "start": start,
        "history": T,
        "stride": stride,
        "steps": steps,
        "element": g,
        "element_name": element_name(g),
        "group": GROUP.name,
        "frame_interval": interval,
        "init_time": init_time,
        "blowup_factor": blowup_factor,
        "divergence": (
            "NaN/Inf or max|w| > blowup_factor x max|w| of the initial frames; diverged_at is the first such "
            "lead, and that lead and all later ones are NaN"
        ),
        "lead_convention": (
            "lead l predicts frame start + (history - 1 + l) * stride of data_file (after element)"
        ),
        "sim_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
    try:
        with (
            atomic_output(out, overwrite=overwrite) as tmp,
            xr.open_dataset(src.path, engine="netcdf4", cache=False) as ds,
            tqdm(
                total=S * steps,
                unit="state",
                desc=f"rollout {steps} steps",
                disable=not progress,
                dynamic_ncols=True,
            ) as bar,
        ):
            coords = {name: np.asarray(ds[name].values) for name in ("y", "x") if name in ds.variables}
            if g % 2:  # a quarter turn swaps the axes; both are the same cell centres on a square grid
                coords = {"y": coords.get("x"), "x": coords.get("y")}
            labels = np.asarray(ds["sample"].values)[picks] if "sample" in ds.coords else picks
            with _create(tmp, S, steps, H, W, chunk, labels, coords, init_time, interval, meta) as nc:
                for b0 in range(0, S, batch_size):
                    positions = picks[b0 : b0 + batch_size]
                    history, forcing = _initial(ds, src.shared_forcing, positions, start, T, F, g, stride)
                    if state == "velocity":
                        history = vorticity_to_state(history[:, :, 0], state, src.attrs["length"])
                    diverged, init_max = _roll_batch(
                        stepper,
                        history.to(device=device, dtype=dtype),
                        None if forcing is None else forcing.to(device=device, dtype=dtype),
                        nc["vorticity"],
                        b0,
                        to_vorticity=to_vorticity,
                        steps=steps,
                        chunk=chunk,
                        blowup_factor=blowup_factor,
                        bar=bar,
                    )
                    nc["diverged_at"][b0 : b0 + len(positions)] = diverged
                    nc["initial_max_abs"][b0 : b0 + len(positions)] = init_max
    finally:
        stepper.train(was_training)
    return out


def _initial(
    ds: xr.Dataset,
    shared_forcing: bool,
    positions: np.ndarray,
    start: int,
    T: int,
    F: int,
    g: int,
    stride: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The (transformed) initial frames ``[B, T, 1, H, W]`` and forcing ``[B, 1, H, W]`` (or None)."""
    stop = start + (T - 1) * stride + 1
    frames = torch.from_numpy(read_frames(ds, positions, start, stop, step=stride))  # [B, T, H, W]
    if not torch.isfinite(frames).all():
        raise DataFileError(f"samples {positions.tolist()}: the initial frames contain NaN/Inf")
    history = transform_vorticity(frames, g)[:, :, None]  # [B, T, 1, H, W]
    if not F:
        return history, None
    if shared_forcing:
        f = torch.from_numpy(np.asarray(ds["forcing"].values, dtype=np.float32))  # [H, W]
        f = f.expand(len(positions), 1, *f.shape)  # [B, 1, H, W]
    else:
        f = ds["forcing"].isel(sample=xr.DataArray(positions, dims="s")).values
        f = torch.from_numpy(np.asarray(f, dtype=np.float32))[:, None]  # [B, 1, H, W]
    return history, transform_vorticity(f, g)


def _roll_batch(
    stepper: Stepper,
    history: torch.Tensor,
    forcing: torch.Tensor | None,
    var,
    b0: int,
    *,
    steps: int,
    chunk: int,
    blowup_factor: float,
    bar,
    to_vorticity,
) -> tuple[np.ndarray, np.ndarray]:
    """Roll one batch out and write the vorticity of its states (``to_vorticity``: ``[..., C, H, W] ->
    [..., H, W]``) to ``var[b0:b0+B]``; returns (diverged_at, initial max |w|)."""
    B, _, _, H, W = history.shape
    device = history.device
    init_max = to_vorticity(history).abs().amax(dim=(1, 2, 3))  # [B]
    limit = torch.where(init_max > 0, blowup_factor * init_max, torch.full_like(init_max, math.inf))
    alive = torch.ones(B, dtype=torch.bool, device=device)
    diverged = torch.full((B,), -1, dtype=torch.int64, device=device)
    buffer = torch.empty(B, chunk, H, W, dtype=torch.float32, device=device)  # [B, chunk, H, W]
    lead = 0
    states = stepper.rollout(history, forcing, steps)
    try:
        for state in states:  # [B, C, H, W]
            lead += 1
            w = to_vorticity(state)  # [B, H, W]
            bad = ~torch.isfinite(w).all(dim=(1, 2)) | (w.abs().amax(dim=(1, 2)) > limit)  # [B]
            diverged = torch.where(bad & alive, lead, diverged)
            alive &= ~bad
            buffer[:, (lead - 1) % chunk] = torch.where(alive[:, None, None], w, math.nan)
            bar.update(B)
            if lead % chunk == 0 or lead == steps:
                n = (lead - 1) % chunk + 1
                var[b0 : b0 + B, lead - n : lead] = buffer[:, :n].cpu().numpy()
                if not bool(alive.any()):
                    break
    finally:
        states.close()
    if lead < steps:  # every sample diverged: the rest is NaN
        nan = np.full((B, chunk, H, W), np.nan, dtype=np.float32)
        for l0 in range(lead, steps, chunk):
            l1 = min(l0 + chunk, steps)
            var[b0 : b0 + B, l0:l1] = nan[:, : l1 - l0]
            bar.update(B * (l1 - l0))
    return diverged.cpu().numpy().astype(np.int32), init_max.float().cpu().numpy()


def _create(
    path: Path,
    S: int,
    steps: int,
    H: int,
    W: int,
    chunk: int,
    samples: np.ndarray,
    coords: dict,
    init_time: float,
    interval: float,
    attrs: dict,
):
    """Create the rollout file with its dimensions, coordinates and attributes; returns the open Dataset."""
    import netCDF4

    nc = netCDF4.Dataset(path, "w", format="NETCDF4")
    try:
        nc.setncatts(attrs)
        for name, size in (("sample", S), ("lead_time", steps), ("y", H), ("x", W)):
            nc.createDimension(name, size)
        v = nc.createVariable("sample", "i8", ("sample",))
        v[:] = samples
        v.long_name = "sample index in data_file"
        v = nc.createVariable("lead_time", "i4", ("lead_time",))
        v[:] = np.arange(1, steps + 1, dtype=np.int32)
        v.setncatts({"long_name": "lead time", "units": "model steps"})
        leads = np.arange(1, steps + 1, dtype=np.float64)
        v = nc.createVariable("lead_model_time", "f8", ("lead_time",))
        v[:] = leads * interval
        v.setncatts({"long_name": "lead time in model time", "units": "model time units"})
        v = nc.createVariable("time", "f8", ("lead_time",))
        v[:] = init_time + leads * interval
        v.setncatts({"long_name": "time of the predicted frame in data_file", "units": "model time units"})
        for name, n in (("y", H), ("x", W)):
            v = nc.createVariable(name, "f8", (name,))
            values = coords.get(name)
            v[:] = np.arange(n, dtype=np.float64) if values is None else values
            v.setncatts({"long_name": f"{name} (cell centres)", "units": "domain length units"})
        v = nc.createVariable(
            "vorticity",
            "f4",
            ("sample", "lead_time", "y", "x"),
            chunksizes=(1, min(chunk, steps), H, W),
            fill_value=np.float32(np.nan),
        )
        # Writes cover whole chunks and nothing is read back, so a small chunk cache suffices; netCDF's
        # default (64 MiB per variable) would hold that much of the trajectory in memory. (A size of 0
        # means "the default" to netCDF.)
        v.set_var_chunk_cache(size=1 << 20, nelems=1, preemption=1.0)
        v.setncatts(
            {
                "long_name": "predicted vorticity",
                "description": "w = dv/dx - du/dy (a pseudoscalar); NaN from the sample's divergence on",
            }
        )
        v = nc.createVariable("diverged_at", "i4", ("sample",))
        v[:] = np.full(S, -1, dtype=np.int32)
        v.setncatts(
            {"long_name": "first diverged lead", "description": "lead_time of divergence, -1 if none"}
        )
        v = nc.createVariable("initial_max_abs", "f4", ("sample",))
        v.long_name = "max |w| over the initial frames (the blow-up reference)"
    except BaseException:
        nc.close()
        raise
    return nc
