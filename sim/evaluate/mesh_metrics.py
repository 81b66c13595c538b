"""Metrics of a mesh rollout (``rollout_mesh_to_netcdf``) against its cylinder-flow data file.

Lead ``l`` of the rollout is compared with frame ``start + (history - 1 + l) * stride`` of the data file
(the rollout's velocities are stored in the data file's frame, whatever its ``rotation_deg`` /
``mirror``). For sample ``s`` with ``n_s`` real nodes (``num_nodes``; padding nodes are never read),
prediction ``p`` and truth ``t`` (``[n_s, 2]`` at one lead)::

    mse[s, l]    = sum((p - t)^2) / (2 n_s)           mean over the real nodes and both components
    rmse[s, l]   = sqrt(mse[s, l])
    rel_l2[s, l] = ||p - t|| / ||t||                   Frobenius norms over the real nodes and components
    rmse_h[s]    = sqrt(mean(mse[s, 1..h]))            MeshGraphNets' rollout RMSE over leads 1..h
    rmse_h_mean  = sqrt(mean over s of rmse_h[s]^2)    the per-sample MSEs pooled, each sample weighing one

with ``h`` = 1, 50 (``rmse_1``, ``rmse_50``) and every lead with truth (``rmse_all``). MeshGraphNets
(Pfaff et al. 2021, table) reports these ``x 10^-3`` on CylinderFlow: 2.34, 6.3, 40.88 (their data and
velocity scale, not ours: orientation only). Leads past the data file's last frame have no truth: their
errors are NaN, and ``rmse_h`` is NaN where fewer than ``h`` leads have truth.

Divergence: a sample's prediction is NaN from its ``diverged_at`` lead on, so its errors there are NaN
and its ``rmse_h`` is NaN for ``h >= diverged_at``. Means over samples (``rmse_mean``, ``rel_l2_mean``
``[lead_time]``, ``rmse_h_mean``, ``strouhal_*_mean``) are over the samples finite there;
``diverged_fraction`` and ``diverged_at`` say how many dropped out.

Strouhal number: a probe per sample, the real mesh node nearest to ``(center_x + 2 diameter, center_y)``
(two diameters behind the cylinder's centre, in the wake); the transverse velocity ``v`` there over the
leads with truth, for the prediction and for the truth, gives the shedding frequency ``f``
(:func:`sim.solvers.cylinder.shedding_frequency`: upward zero crossings about the mean) and
``St = f diameter / u_mean``. ``strouhal_lift`` is the truth's from the stored lift coefficient over the
same frames, a cross-check of the probe. A Strouhal number is NaN when its signal is not finite over the
whole window (a diverged prediction), flat (standard deviation at most ``flat_tol * u_mean`` for ``v``,
``flat_tol`` for the lift coefficient: no oscillation, e.g. a persistence forecast) or too short for three
upward zero crossings (``shedding_frequency`` raises ValueError, which is caught).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import xarray as xr

from sim.data.cylinder import open_cylinder
from sim.data.ns2d import DataFileError
from sim.evaluate._common import check_int, netcdf_attr, open_netcdf
from sim.evaluate.metrics import _mean_over_samples
from sim.io import atomic_output, check_output_path
from sim.solvers.cylinder import shedding_frequency

__all__ = [
    "HORIZONS",
    "PROBE_DIAMETERS",
    "describe_test_set",
    "evaluate_mesh_rollout",
    "probe_nodes",
    "rollout_gap",
    "save_mesh_metrics",
]

#: The fixed horizons ``h`` of ``rmse_<h>`` (besides ``rmse_all``), as MeshGraphNets reports them.
HORIZONS = (1, 50)

#: Variables the data file must have for the evaluation.
_TRUTH_VARIABLES = (
    "time",
    "velocity",
    "pos",
    "num_nodes",
    "diameter",
    "center_x",
    "center_y",
    "u_mean",
    "lift",
)

#: How far behind the cylinder's centre the probe lies, in diameters.
PROBE_DIAMETERS = 2.0


def describe_test_set(attrs) -> str:
    """The test set of a rollout from its attributes: ``"original"``, ``"rotated 37°"``, ``"mirrored"`` or
    ``"mirrored, rotated 37°"`` (``rotation_deg``, ``mirror``; missing ones count as 0)."""
    angle = float(attrs.get("rotation_deg", 0.0) or 0.0)
    mirror = bool(int(attrs.get("mirror", 0) or 0))
    parts = (["mirrored"] if mirror else []) + ([f"rotated {angle:g}°"] if angle != 0 else [])
    return ", ".join(parts) or "original"


def probe_nodes(
    pos: np.ndarray, num_nodes: np.ndarray, center_x: np.ndarray, center_y: np.ndarray, diameter: np.ndarray
) -> np.ndarray:
    """Each sample's probe: the real node nearest to ``(center_x + 2 diameter, center_y)``.

    Args:
        pos: ``[S, N, 2]`` node positions (NaN on padding).
        num_nodes: ``[S]`` real nodes per sample.
        center_x, center_y, diameter: ``[S]`` the cylinders.

    Returns:
        ``[S]`` int64 node indices (each below its ``num_nodes``; the first of equally near nodes).
    """
    out = np.empty(len(num_nodes), dtype=np.int64)
    for s, n in enumerate(np.asarray(num_nodes, dtype=np.int64)):
        target = np.array([center_x[s] + PROBE_DIAMETERS * diameter[s], center_y[s]])  # [2]
        d2 = ((np.asarray(pos[s, :n], dtype=np.float64) - target) ** 2).sum(axis=-1)  # [n]
        out[s] = int(np.argmin(d2))
    return out


def _strouhal(times: np.ndarray, signal: np.ndarray, *, diameter: float, u_mean: float, flat: float) -> float:
    """``f diameter / u_mean`` of ``signal [K]`` at ``times [K]``; NaN if not finite, flat or too short."""
    if signal.size < 3 or not np.isfinite(signal).all() or float(signal.std()) <= flat:
        return math.nan
    try:
        return shedding_frequency(times, signal) * diameter / u_mean
    except ValueError:  # fewer than 3 upward zero crossings: no oscillation measurable in the window
        return math.nan


def evaluate_mesh_rollout(
    pred_path: str | os.PathLike,
    truth_path: str | os.PathLike | None = None,
    *,
    chunk: int | None = None,
    flat_tol: float = 1e-4,
) -> xr.Dataset:
    """Compare a rollout from ``rollout_mesh_to_netcdf`` with its cylinder-flow data file.

    Definitions: the module docstring. The files are read one sample and ``chunk`` leads at a time, so
    memory does not grow with the rollout's length (nor with the number of samples).

    Args:
        pred_path: the rollout file.
        truth_path: the data file; the rollout's ``data_file`` attribute when None.
        chunk: leads read at a time (per sample); by default as many as keep a block under 2^21 values.
        flat_tol: a probe signal whose standard deviation is at most ``flat_tol * u_mean`` (the lift:
            ``flat_tol``) has no Strouhal number.

    Returns:
        A Dataset with coordinates ``sample`` (the data file's indices), ``lead_time`` (1..steps), and on
        ``lead_time`` ``time`` (the data file's time, s; NaN past it) and ``frame`` (the data file's frame,
        -1 past it); variables:

        * ``rmse``, ``rel_l2`` ``[sample, lead_time]`` and their means ``rmse_mean``, ``rel_l2_mean``
          ``[lead_time]``;
        * ``rmse_1``, ``rmse_50``, ``rmse_all`` ``[sample]`` and ``rmse_1_mean``, ``rmse_50_mean``,
          ``rmse_all_mean`` (scalars);
        * ``diverged_at`` ``[sample]`` (-1: never), ``diverged_fraction`` ``[lead_time]``;
        * ``probe_node``, ``probe_x``, ``probe_y`` ``[sample]``; ``probe_v_pred``, ``probe_v_truth``
          ``[sample, lead_time]`` (``v`` at the probe; the truth NaN past the data file);
        * ``strouhal_pred``, ``strouhal_truth``, ``strouhal_lift`` ``[sample]`` and their ``*_mean``.

        Attributes: the rollout's, plus ``rollout_file``, ``truth_file``, ``truth_leads`` (the leads with
        a true frame, ``rmse_all``'s ``h``), ``test_set``, ``flat_tol``.

    Raises:
        DataFileError: a missing or malformed file, a rollout whose ``data_file`` is missing, files that
            disagree (node count, sample indices, frame times), or a prediction that is NaN on real nodes
            before its divergence.
        ValueError: a bad ``chunk`` or ``flat_tol``.
    """
    pred_path = Path(pred_path)
    if chunk is not None:
        chunk = check_int("chunk", chunk, minimum=1)
    if isinstance(flat_tol, bool) or not isinstance(flat_tol, (int, float)) or not 0 <= flat_tol < math.inf:
        raise ValueError(f"flat_tol: expected a finite float >= 0, got {flat_tol!r}")
    with open_netcdf(pred_path) as pred:
        attrs = dict(pred.attrs)
        _check_rollout(pred, pred_path, attrs)
        start, history, stride = (int(attrs[k]) for k in ("start", "history", "stride"))
        truth_path = _truth_path(pred_path, attrs, truth_path)
        S, L, N = pred.sizes["sample"], pred.sizes["lead_time"], pred.sizes["node"]
        leads = np.asarray(pred["lead_time"].values, dtype=np.int64)  # [L]
        if not np.array_equal(leads, np.arange(1, L + 1)):
            raise DataFileError(f"{pred_path}: lead_time must be 1..{L}, got {leads[:5].tolist()}...")
        samples = np.asarray(pred["sample"].values, dtype=np.int64)  # [S]
        diverged_at = (
            np.asarray(pred["diverged_at"].values, dtype=np.int32)
            if "diverged_at" in pred.variables
            else np.full(S, -1, dtype=np.int32)
        )
        pred_time = np.asarray(pred["time"].values, dtype=np.float64) if "time" in pred.variables else None

        with open_cylinder(truth_path) as truth:
            missing = [v for v in _TRUTH_VARIABLES if v not in truth.variables]
            if missing:
                raise DataFileError(f"{truth_path}: missing variable(s) {missing} (needed by the evaluation)")
            positions, num_nodes = _sample_nodes(truth, samples, N, pred_path, truth_path)  # [S] each
            geometry = {
                k: np.asarray(truth[k].values, dtype=np.float64)[positions]
                for k in ("diameter", "center_x", "center_y", "u_mean")
            }  # each [S]
            pos = np.asarray(truth["pos"].values, dtype=np.float64)[positions]  # [S, N, 2]
            if (num_nodes < 1).any() or (num_nodes > N).any():
                raise DataFileError(f"{truth_path}: num_nodes {num_nodes.tolist()} outside 1..{N}")
            times = np.asarray(truth["time"].values, dtype=np.float64)  # [T]
            n_frames = times.size
            first = start + (history - 1) * stride  # the data frame at lead 0
            frames = first + stride * leads  # [L]
            have = frames < n_frames  # [L], a prefix of the leads
            truth_leads = int(have.sum())
            frame_time = np.where(have, times[np.minimum(frames, n_frames - 1)], np.nan)  # [L]
            if pred_time is not None:
                both = have & np.isfinite(pred_time)
                off = np.abs(pred_time - frame_time) > 1e-6 * np.maximum(1.0, np.abs(frame_time))
                if (both & off).any():
                    j = int(np.argmax(both & off))
                    raise DataFileError(
                        f"{pred_path}: lead {j + 1} is at time {pred_time[j]:.6g} but frame {int(frames[j])} "
                        f"of {truth_path} is at {frame_time[j]:.6g} (another data file, or start/stride?)"
                    )
            probe = probe_nodes(
                pos, num_nodes, geometry["center_x"], geometry["center_y"], geometry["diameter"]
            )
            probe_xy = pos[np.arange(S), probe]  # [S, 2]
            alive = np.where(diverged_at[:, None] >= 0, leads[None, :] < diverged_at[:, None], True)  # [S, L]
            sq = np.full((S, L), np.nan)  # sum of squared errors over the real nodes and components
            tsq = np.full((S, L), np.nan)  # sum of squared true values
            v_pred = np.full((S, L), np.nan)  # v at the probe
            v_truth = np.full((S, L), np.nan)
            if chunk is None:
                chunk = int(np.clip(2**21 // (2 * N), 1, 1024))
            # sample by sample, ``chunk`` leads at a time: the rollout is stored in blocks of leads of one
            # sample, the data file frame by frame, so each read is contiguous in both
            for i, (s, n) in enumerate(zip(positions, num_nodes, strict=True)):
                for i0 in range(0, L, chunk):
                    i1 = min(i0 + chunk, L)
                    p = np.asarray(pred["velocity"][i, i0:i1, :n].values, dtype=np.float64)  # [l, n, 2]
                    bad = ~np.isfinite(p).all(axis=(1, 2)) & alive[i, i0:i1]  # [l]
                    if bad.any():
                        raise DataFileError(
                            f"{pred_path}: sample {int(samples[i])} is NaN/Inf on real nodes at lead "
                            f"{i0 + int(np.argmax(bad)) + 1} before its divergence (diverged_at "
                            f"{int(diverged_at[i])}; a rollout of another data file?)"
                        )
                    v_pred[i, i0:i1] = p[:, probe[i], 1]
                    k = int(have[i0:i1].sum())  # leads of this chunk with truth (a prefix)
                    if k == 0:
                        continue
                    f0 = int(frames[i0])
                    t = np.asarray(
                        truth["velocity"][int(s), f0 : f0 + stride * k : stride, :n].values, dtype=np.float64
                    )  # [k, n, 2]
                    sq[i, i0 : i0 + k] = ((p[:k] - t) ** 2).sum(axis=(1, 2))
                    tsq[i, i0 : i0 + k] = (t**2).sum(axis=(1, 2))
                    v_truth[i, i0 : i0 + k] = t[:, probe[i], 1]
            lift = np.asarray(truth["lift"].values, dtype=np.float64)[positions][:, frames[have]]  # [S, K]

    mse = sq / (2 * num_nodes[:, None])  # [S, L]
    rmse = np.sqrt(mse)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_l2 = np.sqrt(sq) / np.sqrt(tsq)
    summary = {}
    for name, h in [*((f"rmse_{h}", h) for h in HORIZONS), ("rmse_all", truth_leads)]:
        per_sample = np.sqrt(mse[:, :h].mean(axis=1)) if 1 <= h <= truth_leads else np.full(S, np.nan)
        summary[name] = per_sample
        summary[f"{name}_mean"] = float(np.sqrt(_mean_over_samples(per_sample**2)))
    t_window = times[frames[have]]  # [K]
    st = {"pred": np.full(S, np.nan), "truth": np.full(S, np.nan), "lift": np.full(S, np.nan)}
    for s in range(S):
        d, u = float(geometry["diameter"][s]), float(geometry["u_mean"][s])
        for key, signal, flat in (
            ("pred", v_pred[s, :truth_leads], flat_tol * u),
            ("truth", v_truth[s, :truth_leads], flat_tol * u),
            ("lift", lift[s], flat_tol),
        ):
            st[key][s] = _strouhal(t_window, signal, diameter=d, u_mean=u, flat=flat)
    dead = (diverged_at[:, None] >= 0) & (leads[None, :] >= diverged_at[:, None])  # [S, L]

    SL = ("sample", "lead_time")
    coords = {
        "sample": ("sample", samples),
        "lead_time": ("lead_time", leads.astype(np.int32), {"units": "model steps"}),
        "time": ("lead_time", frame_time, {"units": "s", "long_name": "time of the true frame"}),
        "frame": (
            "lead_time",
            np.where(have, frames, -1).astype(np.int32),
            {"long_name": "data frame, -1: none"},
        ),
    }
    data_vars = {
        "rmse": (SL, rmse, {"long_name": "sqrt(mean over real nodes and components of (p - t)^2)"}),
        "rel_l2": (SL, rel_l2, {"long_name": "||p - t|| / ||t|| over the real nodes"}),
        "rmse_mean": (
            ("lead_time",),
            _mean_over_samples(rmse),
            {"long_name": "rmse, mean over finite samples"},
        ),
        "rel_l2_mean": (
            ("lead_time",),
            _mean_over_samples(rel_l2),
            {"long_name": "rel_l2, mean over finite samples"},
        ),
        "diverged_at": (("sample",), diverged_at, {"long_name": "first diverged lead, -1 if none"}),
        "diverged_fraction": (
            ("lead_time",),
            dead.mean(axis=0),
            {"long_name": "fraction of the samples diverged at or before this lead"},
        ),
        "probe_node": (("sample",), probe.astype(np.int32), {"long_name": "node nearest (cx + 2 D, cy)"}),
        "probe_x": (("sample",), probe_xy[:, 0], {"units": "m"}),
        "probe_y": (("sample",), probe_xy[:, 1], {"units": "m"}),
        "probe_v_pred": (SL, v_pred, {"long_name": "predicted v at the probe", "units": "m s-1"}),
        "probe_v_truth": (SL, v_truth, {"long_name": "true v at the probe", "units": "m s-1"}),
    }
    for name in ("rmse_all", *(f"rmse_{h}" for h in HORIZONS)):
        h = "every lead with truth" if name == "rmse_all" else f"leads 1..{name[5:]}"
        data_vars[name] = (("sample",), summary[name], {"long_name": f"sqrt(mean mse over {h})"})
        data_vars[f"{name}_mean"] = (
            (),
            summary[f"{name}_mean"],
            {"long_name": f"{name}, pooled over samples"},
        )
    for key, what in (("pred", "predicted v at the probe"), ("truth", "true v at the probe"),
                      ("lift", "true lift coefficient")):  # fmt: skip
        data_vars[f"strouhal_{key}"] = (("sample",), st[key], {"long_name": f"f D / u_mean of the {what}"})
        data_vars[f"strouhal_{key}_mean"] = (
            (),
            float(_mean_over_samples(st[key])),
            {"long_name": "mean over finite samples"},
        )
    meta = {k: netcdf_attr(v) for k, v in attrs.items()}
    meta.update(
        {
            "rollout_file": str(pred_path.resolve()),
            "truth_file": str(truth_path.resolve()),
            "truth_leads": truth_leads,
            "test_set": describe_test_set(attrs),
            "flat_tol": float(flat_tol),
        }
    )
    return xr.Dataset(data_vars=data_vars, coords=coords, attrs=meta)


def rollout_gap(
    path_a: str | os.PathLike, path_b: str | os.PathLike, *, truth_path: str | os.PathLike | None = None
) -> xr.Dataset:
    """How far two mesh rollouts of the same samples and leads are apart, lead by lead.

    ``gap[s, l] = sqrt(sum((a - b)^2) / (2 n_s))`` over sample ``s``'s real nodes and both components (the
    ``rmse`` of :func:`evaluate_mesh_rollout` with ``b`` in place of the truth). Made for a model rolled out
    on the original domain (``a``) and on a transformed one (``b``; both files hold the velocities in the
    data file's frame): for an exactly equivariant model the gap at lead 1 is its equivariance error in the
    precision it ran, and its growth over the leads is how much the learned dynamics amplify rounding
    differences (for an unstable rollout, exponentially, until the two decorrelate).

    Args:
        path_a, path_b: rollout files from ``rollout_mesh_to_netcdf`` of the same data file, samples and
            leads (any test sets).
        truth_path: the data file (for each sample's real node count); ``path_a``'s ``data_file`` when None.

    Returns:
        A Dataset with ``gap [sample, lead_time]`` (NaN from the first lead where either diverged),
        ``gap_mean [lead_time]`` (mean over the samples finite there); attributes: ``path_a``'s, plus
        ``rollout_file``, ``other_rollout_file``, ``test_set``, ``other_test_set``.

    Raises:
        DataFileError: a missing or malformed file, a missing data file, or rollouts that disagree in
            samples, leads or node count.
    """
    path_a, path_b = Path(path_a), Path(path_b)
    with open_netcdf(path_a) as a, open_netcdf(path_b) as b:
        attrs_a, attrs_b = dict(a.attrs), dict(b.attrs)
        _check_rollout(a, path_a, attrs_a)
        _check_rollout(b, path_b, attrs_b)
        for key in ("sample", "lead_time"):
            if not np.array_equal(a[key].values, b[key].values):
                raise DataFileError(
                    f"{path_b}: {key} {b[key].values[:5].tolist()}... differs from {path_a}'s "
                    f"{a[key].values[:5].tolist()}... (rollouts of other samples or lengths?)"
                )
        if a.sizes["node"] != b.sizes["node"]:
            raise DataFileError(
                f"{path_b}: {b.sizes['node']} nodes per sample, {path_a} has {a.sizes['node']} "
                "(rollouts of other data files?)"
            )
        truth_path = _truth_path(path_a, attrs_a, truth_path)
        samples = np.asarray(a["sample"].values, dtype=np.int64)
        leads = np.asarray(a["lead_time"].values, dtype=np.int64)
        with open_cylinder(truth_path) as truth:
            _, num_nodes = _sample_nodes(truth, samples, a.sizes["node"], path_a, truth_path)
        gap = np.full((samples.size, leads.size), np.nan)
        for i, n in enumerate(num_nodes):
            pa = np.asarray(a["velocity"][i, :, :n].values, dtype=np.float64)  # [L, n, 2]
            pb = np.asarray(b["velocity"][i, :, :n].values, dtype=np.float64)
            gap[i] = np.sqrt(((pa - pb) ** 2).sum(axis=(1, 2)) / (2 * n))
            for ds in (a, b):
                first = int(ds["diverged_at"].values[i]) if "diverged_at" in ds.variables else -1
                if first >= 0:
                    gap[i, leads >= first] = np.nan
    meta = {k: netcdf_attr(v) for k, v in attrs_a.items()}
    meta.update(
        rollout_file=str(path_a.resolve()),
        other_rollout_file=str(path_b.resolve()),
        test_set=describe_test_set(attrs_a),
        other_test_set=describe_test_set(attrs_b),
    )
    SL = ("sample", "lead_time")
    return xr.Dataset(
        data_vars={
            "gap": (SL, gap, {"long_name": "sqrt(mean over real nodes and components of (a - b)^2)"}),
            "gap_mean": (
                ("lead_time",),
                _mean_over_samples(gap),
                {"long_name": "gap, mean over finite samples"},
            ),
        },
        coords={"sample": ("sample", samples), "lead_time": ("lead_time", leads.astype(np.int32))},
        attrs=meta,
    )


def _truth_path(pred_path: Path, attrs: dict, truth_path) -> Path:
    """The data file of a rollout: ``truth_path``, else its ``data_file`` attribute (which must exist)."""
    if truth_path is not None:
        return Path(truth_path)
    if not attrs.get("data_file"):
        raise DataFileError(f"{pred_path}: no data_file attribute; pass the data file as truth_path")
    path = Path(attrs["data_file"])
    if not path.is_file():
        raise DataFileError(f"{pred_path}: its data file {path} does not exist (moved? pass truth_path)")
    return path


def _sample_nodes(
    truth: xr.Dataset, samples: np.ndarray, nodes: int, pred_path: Path, truth_path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """The data file's positions of a rollout's ``samples`` and their real node counts, ``[S]`` each.

    Raises:
        DataFileError: the files disagree in nodes per sample, or a sample is not in the data file.
    """
    if truth.sizes["node"] != nodes:
        raise DataFileError(
            f"{pred_path}: {nodes} nodes per sample but its data file {truth_path} has "
            f"{truth.sizes['node']} (a rollout of another data file?)"
        )
    n_truth = truth.sizes["sample"]
    coord = np.asarray(truth["sample"].values) if "sample" in truth.coords else np.arange(n_truth)
    lookup = {int(s): i for i, s in enumerate(coord)}
    absent = [int(s) for s in samples if int(s) not in lookup]
    if absent:
        raise DataFileError(
            f"{pred_path}: samples {absent[:5]} are not in the data file {truth_path} "
            f"({n_truth} samples; a rollout of another data file?)"
        )
    positions = np.asarray([lookup[int(s)] for s in samples], dtype=np.int64)
    return positions, np.asarray(truth["num_nodes"].values, dtype=np.int64)[positions]


def _check_rollout(pred: xr.Dataset, path: Path, attrs: dict) -> None:
    """One-line DataFileError unless ``pred`` is a mesh rollout file."""
    if "velocity" not in pred.variables:
        what = " (a grid rollout: use evaluate_rollout)" if "vorticity" in pred.variables else ""
        raise DataFileError(
            f"{path}: missing variable 'velocity'{what}; expected a file from rollout_mesh_to_netcdf"
        )
    dims = pred["velocity"].dims
    if dims != ("sample", "lead_time", "node", "component"):
        raise DataFileError(
            f"{path}: velocity has dims {dims}, expected (sample, lead_time, node, component)"
        )
    if attrs.get("kind", "cylinder") != "cylinder":
        raise DataFileError(f"{path}: kind {attrs['kind']!r}, expected 'cylinder' (a mesh rollout)")
    missing = [k for k in ("start", "history", "stride") if k not in attrs]
    if missing:
        raise DataFileError(f"{path}: missing attribute(s) {missing} (a file from rollout_mesh_to_netcdf?)")


def save_mesh_metrics(metrics: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the Dataset of :func:`evaluate_mesh_rollout` to netCDF, atomically.

    Raises:
        OutputError: the folder is missing or the file exists without ``overwrite``.
    """
    path = check_output_path(path, overwrite=overwrite)
    with atomic_output(path, overwrite=overwrite) as tmp:
        metrics.to_netcdf(tmp, engine="netcdf4", format="NETCDF4")
    return path
