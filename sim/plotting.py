"""PNG figures of fields (matplotlib, Agg backend), written atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sim.io import atomic_output

__all__ = ["save_curves", "save_field_row"]


def save_field_row(
    fields: Sequence[np.ndarray],
    titles: Sequence[str],
    path: str | os.PathLike,
    *,
    suptitle: str | None = None,
    overwrite: bool = False,
    extent: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0),
) -> Path:
    """Plot 2D fields side by side with one diverging colour scale, symmetric about zero.

    Args:
        fields: arrays ``[ny, nx]`` indexed ``[iy, ix]`` (y up in the picture).
        titles: one per field.
        path: PNG file to write (its folder must exist).
        suptitle: a title over the row.
        overwrite: replace an existing file.
        extent: ``(x0, x1, y0, y1)`` of the domain.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if len(fields) != len(titles) or not fields:
        raise ValueError(f"expected as many titles as fields (>= 1), got {len(fields)} and {len(titles)}")
    finite = [np.abs(f[np.isfinite(f)]) for f in fields]
    vmax = max((float(a.max()) for a in finite if a.size), default=0.0) or 1.0  # NaN-safe (diverged fields)
    fig, axes = plt.subplots(
        1, len(fields), figsize=(2.3 * len(fields) + 1.0, 2.8), squeeze=False, layout="constrained"
    )
    im = None
    for ax, f, title in zip(axes[0], fields, titles, strict=True):
        im = ax.imshow(f, origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax, extent=extent)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    try:
        with atomic_output(path, overwrite=overwrite) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)
    return Path(path)


def save_curves(
    x: Sequence[float],
    curves: dict[str, Sequence[float]],
    path: str | os.PathLike,
    *,
    xlabel: str,
    ylabel: str,
    logy: bool = False,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Line plot of several named curves against a shared x axis (NaN points are skipped).

    Args:
        x: the x values.
        curves: name -> y values (same length as ``x``).
        path: PNG file to write.
        xlabel, ylabel, title: labels.
        logy: logarithmic y axis.
        overwrite: replace an existing file.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.8), layout="constrained")
    xs = np.asarray(x, dtype=float)
    for name, y in curves.items():
        ys = np.asarray(y, dtype=float)
        ok = np.isfinite(ys)
        if ok.any():
            ax.plot(xs[ok], ys[ok], label=name)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    if curves:
        ax.legend(fontsize=8)
    try:
        with atomic_output(path, overwrite=overwrite) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)
    return Path(path)
