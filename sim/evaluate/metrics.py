"""Metrics of a rollout against the ground truth, per lead time: errors, correlation, enstrophy, spectra.

Conventions, for a predicted field ``p`` and the true field ``t`` on the grid (sums over grid points):

* relative L2 error ``||p - t|| / ||t||``; RMSE ``sqrt(mean((p - t)^2))``;
* Pearson correlation ``sum((p - mean p)(t - mean t)) / sqrt(sum((p - mean p)^2) sum((t - mean t)^2))``;
* enstrophy ``mean(w^2) / 2``;
* the isotropic kinetic-energy spectrum ``E(k)``, ``k = 0, 1, 2, ...`` in units of ``2 pi / length``:
  the velocity ``(u, v)`` from the vorticity as the solver computes it (``NavierStokes2D.velocity``),
  ``u_hat = fft2(u) / n^2``, and ``E(k)`` the sum of ``(|u_hat|^2 + |v_hat|^2) / 2`` over the modes with
  ``k - 1/2 <= |k_mode| < k + 1/2``. By Parseval ``sum_k E(k) = mean((u^2 + v^2) / 2)``.

Samples that diverged are NaN from their divergence on (see ``rollout_to_netcdf``); the means over
samples are over the samples that have a finite value at that lead, and ``diverged_fraction`` says how
many have dropped out.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from sim.data.ns2d import DataFileError, velocity_operator
from sim.evaluate._common import (
    check_element,
    check_int,
    element_name,
    netcdf_attr,
    open_netcdf,
    open_source,
    read_frames,
    sample_positions,
    transform_vorticity,
)
from sim.io import atomic_output, check_output_path

__all__ = [
    "correlation",
    "energy_spectrum",
    "enstrophy",
    "evaluate_rollout",
    "metrics_csv",
    "relative_l2",
    "rmse",
    "save_metrics",
]

CSV_COLUMNS = (
    "lead_time",
    "lead_model_time",
    "rel_l2",
    "rmse",
    "correlation",
    "enstrophy_pred",
    "enstrophy_truth",
    "diverged_fraction",
)


# ---------------------------------------------------------------------------------------------------------
# metrics of fields


def relative_l2(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``||pred - truth|| / ||truth||`` over the last two axes.

    Args:
        pred, truth: ``[..., H, W]``.

    Returns:
        ``[...]`` float64 (inf where ``truth`` is zero and ``pred`` is not, NaN where both are).
    """
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    num = np.sqrt(((p - t) ** 2).sum(axis=(-2, -1)))
    den = np.sqrt((t**2).sum(axis=(-2, -1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def rmse(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Root mean square error over the last two axes: ``[..., H, W] -> [...]`` float64."""
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    return np.sqrt(((p - t) ** 2).mean(axis=(-2, -1)))


def correlation(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Pearson correlation over the last two axes: ``[..., H, W] -> [...]`` float64 (NaN for a constant)."""
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    p = p - p.mean(axis=(-2, -1), keepdims=True)
    t = t - t.mean(axis=(-2, -1), keepdims=True)
    num = (p * t).sum(axis=(-2, -1))
    den = np.sqrt((p**2).sum(axis=(-2, -1)) * (t**2).sum(axis=(-2, -1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def enstrophy(w: np.ndarray) -> np.ndarray:
    """``mean(w^2) / 2`` over the last two axes: ``[..., H, W] -> [...]`` float64."""
    w = np.asarray(w, dtype=np.float64)
    return 0.5 * (w**2).mean(axis=(-2, -1))


@functools.lru_cache(maxsize=8)
def _shells(n: int) -> tuple[np.ndarray, int]:
    """Shell index ``round(|k|)`` of each mode of ``fft2`` on ``n x n`` (``[n, n]``), and the shell count."""
    k = np.fft.fftfreq(n, d=1.0 / n)  # integer wavenumbers
    shell = np.rint(np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)).astype(np.int64)  # [n, n]
    shell.setflags(write=False)
    return shell, int(shell.max()) + 1


def energy_spectrum(w: np.ndarray, *, length: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The isotropic kinetic-energy spectrum of vorticity fields on the periodic square.

    Args:
        w: vorticity ``[..., n, n]``.
        length: side of the square.

    Returns:
        ``(k, E)``: ``k`` ``[K]`` the integer shell wavenumbers ``0 .. round(sqrt(2) n / 2)`` (in units
        of ``2 pi / length``), ``E`` ``[..., K]`` float64 with ``E.sum(-1) = mean((u^2 + v^2) / 2)``.
        NaN fields give NaN spectra.

    Raises:
        ValueError: the fields are not square with an even side.
    """
    w = np.asarray(w, dtype=np.float64)
    if w.ndim < 2 or w.shape[-1] != w.shape[-2] or w.shape[-1] % 2:
        raise ValueError(f"energy_spectrum: expected fields [..., n, n] with n even, got {list(w.shape)}")
    n = w.shape[-1]
    lead = w.shape[:-2]
    flat = torch.from_numpy(w.reshape(-1, n, n))  # [N, n, n]
    uv = velocity_operator(n, float(length)).velocity(flat)  # [N, 2, n, n]
    uv_hat = torch.fft.fft2(uv) / n**2  # [N, 2, n, n]
    density = 0.5 * (uv_hat.abs() ** 2).sum(dim=1).numpy()  # [N, n, n]
    shell, K = _shells(n)
    E = np.zeros((density.shape[0], K))
    for i, d in enumerate(density):
        E[i] = np.bincount(shell.ravel(), weights=d.ravel(), minlength=K)
    return np.arange(K), E.reshape(*lead, K)


# ---------------------------------------------------------------------------------------------------------
# a rollout file against its data file


def _mean_over_samples(x: np.ndarray) -> np.ndarray:
    """Mean over axis 0 of the finite values; NaN where there are none (no warnings)."""
    ok = np.isfinite(x)
    count = ok.sum(axis=0)
    total = np.where(ok, x, 0.0).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _first_crossing(err: np.ndarray, threshold: float, leads: np.ndarray) -> np.ndarray:
    """First lead with ``err >= threshold`` along the last axis (``-1`` if none): ``[..., L] -> [...]``."""
    crossed = np.nan_to_num(err, nan=-np.inf) >= threshold
    first = np.where(crossed.any(axis=-1), leads[np.argmax(crossed, axis=-1)], -1)
    return first.astype(np.int32)


def _default_spectrum_leads(steps: int, truth_leads: int) -> list[int]:
    picks = {1, steps}
    k = 10
    while k < steps:
        picks.add(k)
        k *= 10
    if 0 < truth_leads < steps:
        picks.add(truth_leads)
    return sorted(picks)


def evaluate_rollout(
    pred_path: str | os.PathLike,
    truth_path: str | os.PathLike | None = None,
    *,
    element: int | None = None,
    thresholds: Sequence[float] = (0.1, 0.5),
    spectrum_leads: Sequence[int] | None = None,
    chunk: int | None = None,
) -> xr.Dataset:
    """Compare a rollout written by ``rollout_to_netcdf`` with the data file it started from.

    Lead ``l`` is compared with frame ``start + (history - 1 + l) * stride`` of the truth (the rollout's
    ``start``, ``history`` and ``stride`` attributes; stride 1 when absent), transformed by the rollout's
    D4 element like its initial frames; leads past the truth's last frame get NaN errors (the truth may
    be shorter than the rollout). The files are read ``chunk`` leads at a time, so memory does not grow
    with the rollout's length.

    Args:
        pred_path: the rollout file.
        truth_path: the data file; the rollout's ``data_file`` attribute when None.
        element: the D4 element the rollout was made with; None takes it from the rollout file. Given
            explicitly it must match the file's (it exists for rollout files without the attribute).
        thresholds: relative-L2 levels for the time-to-threshold.
        spectrum_leads: leads at which to compute energy spectra; default 1, 10, 100, ..., the last lead
            with truth and the last lead.
        chunk: leads read at a time; by default as many as keep a block of all samples under 2^22 values
            (32 MiB in float64).

    Returns:
        A Dataset with coordinates ``sample``, ``lead_time`` (with ``lead_model_time`` and ``time``),
        ``threshold``, ``spectrum_lead``, ``wavenumber`` and variables:

        * ``rel_l2``, ``rmse``, ``correlation``, ``enstrophy_pred``, ``enstrophy_truth``:
          ``[sample, lead_time]``, and their means over the samples ``*_mean`` ``[lead_time]``;
        * ``diverged_at`` ``[sample]`` (-1: never) and ``diverged_fraction`` ``[lead_time]``;
        * ``time_to_threshold`` ``[threshold, sample]``: the first lead with ``rel_l2 >= threshold``, or
          the divergence lead if earlier; ``time_to_threshold_mean`` ``[threshold]``: the first lead
          where ``rel_l2_mean`` crosses; -1 where nothing crossed;
        * ``spectrum_pred``, ``spectrum_truth`` ``[spectrum_lead, wavenumber]``: mean ``E(k)`` over the
          samples finite at that lead.

        Attributes: the rollout's, plus ``rollout_file``, ``truth_file``, ``truth_leads`` (leads with a
        true frame) and ``element_name``.

    Raises:
        DataFileError: a file is missing or not in the expected layout, or the grids differ.
        ValueError: ``element`` differs from the rollout's.
    """
    pred_path = Path(pred_path)
    if chunk is not None:
        chunk = check_int("chunk", chunk, minimum=1)
    thresholds = [float(t) for t in thresholds]
    with open_netcdf(pred_path) as pred:
        if "vorticity" not in pred.variables or pred["vorticity"].dims != ("sample", "lead_time", "y", "x"):
            raise DataFileError(
                f"{pred_path}: expected vorticity(sample, lead_time, y, x) (a file from rollout_to_netcdf)"
            )
        attrs = dict(pred.attrs)
        for key in ("start", "history"):
            if key not in attrs:
                raise DataFileError(
                    f"{pred_path}: missing attribute '{key}' (a file from rollout_to_netcdf?)"
                )
        start, history = int(attrs["start"]), int(attrs["history"])
        stride = int(attrs.get("stride", 1))
        stored = attrs.get("element")
        g = check_element(int(stored) if stored is not None else element)
        if element is not None and check_element(element) != g:
            raise ValueError(f"element: the rollout {pred_path} was made with element {g}, got {element}")
        if truth_path is None:
            if not attrs.get("data_file"):
                raise DataFileError(f"{pred_path}: no data_file attribute; pass the truth file")
            truth_path = attrs["data_file"]
        src = open_source(truth_path)
        S, L = pred.sizes["sample"], pred.sizes["lead_time"]
        ny, nx = pred.sizes["y"], pred.sizes["x"]
        expected = (src.nx, src.ny) if g % 2 else (src.ny, src.nx)
        if (ny, nx) != expected:
            raise DataFileError(
                f"{pred_path}: grid {ny}x{nx} does not match the truth {src.path} ({src.ny}x{src.nx}, "
                f"element {g})"
            )
        samples = np.asarray(pred["sample"].values, dtype=np.int64)
        leads = np.asarray(pred["lead_time"].values, dtype=np.int64)  # [L]
        diverged_at = (
            np.asarray(pred["diverged_at"].values, dtype=np.int32)
            if "diverged_at" in pred.variables
            else np.full(S, -1, dtype=np.int32)
        )
        first = start + (history - 1) * stride  # the truth frame at lead 0
        truth_leads = int(np.clip((src.n_frames - 1 - first) // stride, 0, None))
        spec_leads = (
            _default_spectrum_leads(int(leads[-1]), truth_leads)
            if spectrum_leads is None
            else sorted({check_int("spectrum_leads", int(s), minimum=1) for s in spectrum_leads})
        )
        bad = [s for s in spec_leads if s not in set(leads.tolist())]
        if bad:
            raise ValueError(f"spectrum_leads: {bad[:5]} are not leads of the rollout (1..{int(leads[-1])})")
        length = float(src.attrs.get("length", 1.0))

        fields = ("rel_l2", "rmse", "correlation", "enstrophy_pred", "enstrophy_truth")
        out = {name: np.full((S, L), np.nan) for name in fields}  # each [S, L]
        K = _shells(nx)[1] if nx == ny and nx % 2 == 0 else 0
        spec_pred = np.full((len(spec_leads), K), np.nan)
        spec_truth = np.full((len(spec_leads), K), np.nan)
        spec_index = {lead: i for i, lead in enumerate(spec_leads)}
        with xr.open_dataset(src.path, engine="netcdf4", cache=False) as truth_ds:
            positions = sample_positions(truth_ds, samples)
            if chunk is None:
                chunk = int(np.clip(2**22 // (S * ny * nx), 1, 1024))
            for i0 in range(0, L, chunk):
                i1 = min(i0 + chunk, L)
                p = np.asarray(pred["vorticity"][:, i0:i1].values, dtype=np.float64)  # [S, l, ny, nx]
                out["enstrophy_pred"][:, i0:i1] = enstrophy(p)
                # truth frames for leads[i0:i1], where they exist
                frames = first + stride * leads[i0:i1]  # [l]
                have = frames < src.n_frames
                t = np.full_like(p, np.nan)
                if have.any():
                    f0, f1 = int(frames[have][0]), int(frames[have][-1]) + 1
                    block = read_frames(truth_ds, positions, f0, f1, step=stride)  # [S, l', y, x]
                    block = torch.from_numpy(block)
                    t[:, have] = transform_vorticity(block, g).numpy()
                    out["rel_l2"][:, i0:i1] = relative_l2(p, t)
                    out["rmse"][:, i0:i1] = rmse(p, t)
                    out["correlation"][:, i0:i1] = correlation(p, t)
                    out["enstrophy_truth"][:, i0:i1] = enstrophy(t)
                for j, lead in enumerate(leads[i0:i1]):
                    if K and int(lead) in spec_index:
                        k = spec_index[int(lead)]
                        spec_pred[k] = _mean_over_samples(energy_spectrum(p[:, j], length=length)[1])
                        if have[j]:
                            spec_truth[k] = _mean_over_samples(energy_spectrum(t[:, j], length=length)[1])
        lead_model_time = pred["lead_model_time"].values if "lead_model_time" in pred.variables else None
        time = pred["time"].values if "time" in pred.variables else None

    dead = (diverged_at[:, None] >= 0) & (leads[None, :] >= diverged_at[:, None])  # [S, L]
    per_sample_cross = []
    for thr in thresholds:
        cross = _first_crossing(out["rel_l2"], thr, leads)  # [S]
        with_div = np.where((diverged_at >= 0) & ((cross < 0) | (diverged_at < cross)), diverged_at, cross)
        per_sample_cross.append(with_div)
    means = {f"{name}_mean": _mean_over_samples(out[name]) for name in fields}
    with np.errstate(divide="ignore", invalid="ignore"):
        # > 1: the surrogate builds up small-scale vorticity; < 1: it damps (blurs) the flow
        ens_ratio = means["enstrophy_pred_mean"] / means["enstrophy_truth_mean"]  # [L]
    mean_cross = [int(_first_crossing(means["rel_l2_mean"], thr, leads)) for thr in thresholds]

    coords = {
        "sample": ("sample", samples),
        "lead_time": ("lead_time", leads.astype(np.int32), {"units": "model steps"}),
        "threshold": ("threshold", np.asarray(thresholds, dtype=np.float64)),
        "spectrum_lead": ("spectrum_lead", np.asarray(spec_leads, dtype=np.int32)),
        "wavenumber": ("wavenumber", np.arange(K, dtype=np.int32), {"units": "2 pi / length"}),
    }
    if lead_model_time is not None:
        coords["lead_model_time"] = ("lead_time", lead_model_time, {"units": "model time units"})
    if time is not None:
        coords["time"] = ("lead_time", time, {"units": "model time units"})
    SL = ("sample", "lead_time")
    data_vars = {
        "rel_l2": (SL, out["rel_l2"], {"long_name": "relative L2 error ||p - t|| / ||t||"}),
        "rmse": (SL, out["rmse"], {"long_name": "root mean square error"}),
        "correlation": (SL, out["correlation"], {"long_name": "Pearson correlation with the truth"}),
        "enstrophy_pred": (SL, out["enstrophy_pred"], {"long_name": "enstrophy mean(w^2)/2, prediction"}),
        "enstrophy_truth": (SL, out["enstrophy_truth"], {"long_name": "enstrophy mean(w^2)/2, truth"}),
        **{
            name: (("lead_time",), values, {"long_name": f"{name[:-5]}, mean over the samples finite there"})
            for name, values in means.items()
        },
        "enstrophy_ratio_mean": (
            ("lead_time",),
            ens_ratio,
            {"long_name": "enstrophy_pred_mean / enstrophy_truth_mean (< 1: damped, > 1: amplified)"},
        ),
        "diverged_at": (("sample",), diverged_at, {"long_name": "first diverged lead, -1 if none"}),
        "diverged_fraction": (
            ("lead_time",),
            dead.mean(axis=0),
            {"long_name": "fraction of the samples diverged at or before this lead"},
        ),
        "time_to_threshold": (
            ("threshold", "sample"),
            np.asarray(per_sample_cross, dtype=np.int32).reshape(len(thresholds), S),
            {"long_name": "first lead with rel_l2 >= threshold or divergence, -1 if none"},
        ),
        "time_to_threshold_mean": (
            ("threshold",),
            np.asarray(mean_cross, dtype=np.int32),
            {"long_name": "first lead with rel_l2_mean >= threshold, -1 if none"},
        ),
        "spectrum_pred": (
            ("spectrum_lead", "wavenumber"),
            spec_pred,
            {"long_name": "kinetic energy spectrum E(k) of the prediction, mean over finite samples"},
        ),
        "spectrum_truth": (
            ("spectrum_lead", "wavenumber"),
            spec_truth,
            {"long_name": "kinetic energy spectrum E(k) of the truth, mean over the samples"},
        ),
    }
    meta = {k: netcdf_attr(v) for k, v in attrs.items()}
    meta.update(
        {
            "rollout_file": str(pred_path.resolve()),
            "truth_file": str(src.path.resolve()),
            "truth_leads": truth_leads,
            "element": g,
            "element_name": element_name(g),
            "length": length,
        }
    )
    return xr.Dataset(data_vars=data_vars, coords=coords, attrs=meta)


def save_metrics(
    metrics: xr.Dataset,
    path: str | os.PathLike,
    *,
    csv: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write the metrics of ``evaluate_rollout`` to netCDF and, per lead, to CSV (both atomically).

    The CSV has one row per lead with the columns ``lead_time, lead_model_time, rel_l2, rmse,
    correlation, enstrophy_pred, enstrophy_truth, diverged_fraction`` (means over the samples).

    Args:
        metrics: the Dataset from ``evaluate_rollout``.
        path: the netCDF file.
        csv: the CSV file; ``path`` with the suffix ``.csv`` when None.
        overwrite: replace existing files.

    Returns:
        ``[netcdf_path, csv_path]``.

    Raises:
        OutputError: a folder is missing or a file exists without ``overwrite``.
    """
    path = Path(path)
    csv = path.with_suffix(".csv") if csv is None else Path(csv)
    for p in (path, csv):
        check_output_path(p, overwrite=overwrite)
    with atomic_output(path, overwrite=overwrite) as tmp:
        metrics.to_netcdf(tmp, engine="netcdf4", format="NETCDF4")
    with atomic_output(csv, overwrite=overwrite) as tmp:
        tmp.write_text(metrics_csv(metrics))
    return [path, csv]


def metrics_csv(metrics: xr.Dataset) -> str:
    """The per-lead means of ``evaluate_rollout`` as CSV text (header line, one row per lead)."""
    leads = metrics["lead_time"].values
    mt = (
        metrics["lead_model_time"].values
        if "lead_model_time" in metrics.coords
        else np.full(len(leads), np.nan)
    )
    cols = {
        "lead_time": leads,
        "lead_model_time": mt,
        **{c: metrics[f"{c}_mean"].values for c in CSV_COLUMNS[2:7]},
        "diverged_fraction": metrics["diverged_fraction"].values,
    }
    lines = [",".join(CSV_COLUMNS)]
    for i in range(len(leads)):
        row = [str(int(cols["lead_time"][i]))] + [f"{float(cols[c][i]):.8g}" for c in CSV_COLUMNS[1:]]
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"
