"""Incompressible 2D Navier-Stokes in vorticity form on the periodic square (the FNO benchmark).

Equations, on ``[0, L)^2`` with periodic boundaries::

    dw/dt + u . grad(w) = nu Laplacian(w) - drag w + f
    u = (u, v) = (d psi/dy, -d psi/dx),   -Laplacian(psi) = w,   so   w = dv/dx - du/dy.

Conventions (docs/conventions.md): arrays are ``[..., iy, ix]`` (x along the last axis), points are cell
centres ``(i + 1/2) L / n``; ``torch.rot90(w, 1, dims=(-1, -2))`` rotates a field counter-clockwise.
Vorticity is a pseudoscalar: if ``w(t)`` solves the equations with forcing ``f``, then so does
``rot90(w(t))`` with ``rot90(f)``, and ``-w(t).transpose(-1, -2)`` with ``-f.transpose(-1, -2)``
(a reflection flips the sense of rotation).

Discretisation: pseudo-spectral (real FFTs), the advection term computed on the grid and dealiased by
the 2/3 rule, odd derivatives zero on the Nyquist modes (so the discrete operator commutes exactly with
rot90 and the reflections), time stepping IMEX "CN-Heun": Crank-Nicolson for viscosity and drag,
Heun's predictor-corrector for advection and forcing; second order in ``dt``, two advection
evaluations (10 FFTs) per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from sim.discretize.periodic import PeriodicGrid2D

__all__ = ["NavierStokes2D", "SolverDivergedError", "solenoidal_projection"]


class SolverDivergedError(FloatingPointError):
    """The solution became NaN or infinite.

    Attributes:
        step: the step (1-based, counted within the ``advance`` call) after which it was non-finite.
        time: the time advanced within the call when it was found, ``step * dt``.
    """

    def __init__(self, message: str, *, step: int, time: float):
        super().__init__(message)
        self.step = step
        self.time = time


@dataclass
class _Workspace:
    """Buffers reused by every step of one ``advance`` call."""

    spec4: torch.Tensor  # [4, B, n, n//2+1] complex: spectra of u, v, w_x, w_y
    fields: torch.Tensor  # [4, B, n, n] real: u, v, w_x, w_y on the grid
    product: torch.Tensor  # [B, n, n] real: u w_x + v w_y
    base: torch.Tensor  # [B, n, n//2+1] complex, and so on below
    predictor: torch.Tensor
    a0: torch.Tensor
    a1: torch.Tensor
    good: torch.Tensor  # the last state known to be finite

    @classmethod
    def like(cls, w_hat: torch.Tensor, n: int) -> _Workspace:
        B = w_hat.shape[0]
        real = torch.float32 if w_hat.dtype == torch.complex64 else torch.float64
        spec = [torch.empty_like(w_hat) for _ in range(5)]
        return cls(
            spec4=w_hat.new_empty((4, *w_hat.shape)),
            fields=torch.empty(4, B, n, n, dtype=real, device=w_hat.device),
            product=torch.empty(B, n, n, dtype=real, device=w_hat.device),
            base=spec[0],
            predictor=spec[1],
            a0=spec[2],
            a1=spec[3],
            good=spec[4],
        )


class NavierStokes2D(nn.Module):
    """Batched pseudo-spectral solver for 2D vorticity on the periodic square.

    Works in float32 and float64 (the dtype of the vorticity passed in) on any device the module is
    moved to (``solver.to("cuda")``); tables are non-persistent buffers, so the module has no state dict.

    Args:
        resolution: grid points per side, a positive even number.
        viscosity: kinematic viscosity ``nu >= 0``.
        dt: the largest time step; ``advance`` splits a time span into equal steps no larger than this.
        length: side of the periodic square.
        drag: linear (Rayleigh) drag coefficient ``>= 0``.

    Example:
        >>> solver = NavierStokes2D(resolution=64, viscosity=1e-3, dt=1e-3)
        >>> w1 = solver.advance(w0, 1.0, forcing=f)  # w0: [B, 64, 64], f: [64, 64] or [B, 64, 64]
    """

    def __init__(
        self, resolution: int, viscosity: float, dt: float, *, length: float = 1.0, drag: float = 0.0
    ):
        super().__init__()
        if (
            isinstance(resolution, bool)
            or not isinstance(resolution, int)
            or resolution < 2
            or resolution % 2
        ):
            raise ValueError(f"NavierStokes2D: resolution must be a positive even int, got {resolution!r}")
        for name, value in (("viscosity", viscosity), ("drag", drag)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"NavierStokes2D: {name} must be a finite float >= 0, got {value!r}")
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"NavierStokes2D: dt must be a finite float > 0, got {dt!r}")
        if not (isinstance(length, (int, float)) and math.isfinite(length) and length > 0):
            raise ValueError(f"NavierStokes2D: length must be a finite float > 0, got {length!r}")
        self.grid = PeriodicGrid2D(resolution, float(length))
        self.resolution = resolution
        self.viscosity = float(viscosity)
        self.dt = float(dt)
        self.length = float(length)
        self.drag = float(drag)

        n = resolution
        kx, ky = self.grid.wavenumbers(dtype=torch.float64)  # [n, n//2+1] each
        k2 = kx**2 + ky**2  # -Laplacian symbol, Nyquist included
        inv_k2 = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, 1.0), 0.0)
        dx, dy = _odd_derivative_symbols(kx, ky)
        # 2/3 rule: keep integer wavenumbers |k| < n/3 on each axis; drop the mean of the advection term.
        kint_x = torch.fft.rfftfreq(n, dtype=torch.float64) * n
        kint_y = torch.fft.fftfreq(n, dtype=torch.float64) * n
        keep = (kint_y.abs()[:, None] < n / 3) & (kint_x.abs()[None, :] < n / 3)  # [n, n//2+1]
        keep[0, 0] = False
        # (u, v, w_x, w_y) from w_hat in one broadcast multiply: u = i k_y w / k^2, v = -i k_x w / k^2.
        ops = torch.stack([1j * dy * inv_k2, -1j * dx * inv_k2, 1j * dx, 1j * dy])  # [4, n, n//2+1]
        self.register_buffer("_k2", k2, persistent=False)
        self.register_buffer("_keep", keep.to(torch.float64), persistent=False)
        self.register_buffer("_ops", ops, persistent=False)

    def extra_repr(self) -> str:
        return (
            f"resolution={self.resolution}, viscosity={self.viscosity:g}, dt={self.dt:g}, "
            f"length={self.length:g}, drag={self.drag:g}"
        )

    # ---------------------------------------------------------------------------------------------------
    # input checks

    def _check_w(self, w: torch.Tensor, what: str = "w") -> None:
        n = self.resolution
        if not isinstance(w, torch.Tensor):
            raise TypeError(f"NavierStokes2D: {what} must be a torch.Tensor, got {type(w).__name__}")
        if w.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"NavierStokes2D: {what} must be float32 or float64, got {w.dtype}")
        if w.ndim != 3 or w.shape[-2:] != (n, n):
            raise ValueError(f"NavierStokes2D: {what} must have shape [B, {n}, {n}], got {list(w.shape)}")

    def _forcing_hat(self, forcing: torch.Tensor | None, w: torch.Tensor) -> torch.Tensor | None:
        """Spectrum of the forcing without its mean, ``[1 or B, n, n//2+1]``, or None."""
        if forcing is None:
            return None
        n = self.resolution
        if not isinstance(forcing, torch.Tensor):
            raise TypeError(f"NavierStokes2D: forcing must be a torch.Tensor, got {type(forcing).__name__}")
        if forcing.ndim == 2:
            forcing = forcing[None]
        if forcing.ndim != 3 or forcing.shape[-2:] != (n, n) or forcing.shape[0] not in (1, w.shape[0]):
            raise ValueError(
                f"NavierStokes2D: forcing must have shape [{n}, {n}] or [{w.shape[0]}, {n}, {n}], "
                f"got {list(forcing.shape)}"
            )
        f_hat = torch.fft.rfft2(forcing.to(dtype=w.dtype, device=w.device))
        f_hat[..., 0, 0] = 0.0
        return f_hat

    def _tables(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The spectral tables in the dtype and on the device of ``w``."""
        cdtype = torch.complex64 if w.dtype == torch.float32 else torch.complex128
        return (
            self._k2.to(dtype=w.dtype, device=w.device),
            self._keep.to(dtype=w.dtype, device=w.device),
            self._ops.to(dtype=cdtype, device=w.device),
        )

    # ---------------------------------------------------------------------------------------------------
    # physics

    def _advection_hat(
        self, w_hat: torch.Tensor, ops: torch.Tensor, work: _Workspace | None = None, out=None
    ) -> torch.Tensor:
        """Spectrum of ``u . grad w`` on the grid (not yet dealiased).

        Args:
            w_hat: ``[B, n, n//2+1]``.
            ops: ``[4, 1, n, n//2+1]``, the spectral operators giving u, v, w_x, w_y.
            work: preallocated buffers (the time loop reuses them: on a CPU, allocating tensors of tens
                of MB every step costs as much as the FFTs); None allocates.
            out: ``[B, n, n//2+1]`` buffer for the result (with ``work``).
        """
        n = self.resolution
        if work is None:
            u, v, w_x, w_y = torch.fft.irfft2(ops * w_hat, s=(n, n)).unbind(0)  # 4 x [B, n, n]
            return torch.fft.rfft2(torch.addcmul(u * w_x, v, w_y))
        torch.mul(ops, w_hat, out=work.spec4)
        torch.fft.irfft2(work.spec4, s=(n, n), out=work.fields)
        u, v, w_x, w_y = work.fields.unbind(0)
        torch.mul(u, w_x, out=work.product).addcmul_(v, w_y)
        return torch.fft.rfft2(work.product, out=out)

    def velocity(self, w: torch.Tensor) -> torch.Tensor:
        """Velocity of a vorticity field.

        Args:
            w: vorticity ``[B, n, n]``.

        Returns:
            ``[B, 2, n, n]``: ``(u, v)``, the x and y components, divergence-free, with
            ``dv/dx - du/dy = w - mean(w)`` up to the Nyquist modes of ``w``.
        """
        self._check_w(w)
        n = self.resolution
        _, _, ops = self._tables(w)
        w_hat = torch.fft.rfft2(w)  # [B, n, n//2+1]
        uv = torch.fft.irfft2(ops[:2, None] * w_hat[None], s=(n, n))  # [2, B, n, n]
        return uv.transpose(0, 1)  # [B, 2, n, n]

    def vorticity(self, uv: torch.Tensor) -> torch.Tensor:
        """Vorticity ``dv/dx - du/dy`` of a velocity field (spectral derivatives), the inverse of
        :meth:`velocity` on mean-free vorticity: ``vorticity(velocity(w)) = w - mean(w)`` up to the
        Nyquist modes. The divergent part of ``uv`` does not enter.

        Args:
            uv: velocity ``[B, 2, n, n]``, the x and y components.

        Returns:
            ``[B, n, n]``.
        """
        if not isinstance(uv, torch.Tensor) or uv.ndim != 4 or uv.shape[1] != 2:
            got = list(uv.shape) if isinstance(uv, torch.Tensor) else type(uv).__name__
            raise ValueError(f"NavierStokes2D: uv must have shape [B, 2, n, n], got {got}")
        self._check_w(uv[:, 0], what="uv[:, 0]")
        _, _, ops = self._tables(uv)
        u_hat, v_hat = torch.fft.rfft2(uv).unbind(1)  # 2 x [B, n, n//2+1]
        # ops[2] and ops[3] are the spectral d/dx and d/dy (they give w_x, w_y from w_hat)
        w_hat = ops[2] * v_hat - ops[3] * u_hat
        return torch.fft.irfft2(w_hat, s=(self.resolution,) * 2)  # [B, n, n]

    def tendency(self, w: torch.Tensor, forcing: torch.Tensor | None = None) -> torch.Tensor:
        """The right-hand side ``dw/dt = -u . grad(w) + nu Laplacian(w) - drag w + f`` of the solver.

        Args:
            w: vorticity ``[B, n, n]``.
            forcing: ``[n, n]`` or ``[B, n, n]`` (its mean is ignored), or None.

        Returns:
            ``[B, n, n]``.
        """
        self._check_w(w)
        n = self.resolution
        k2, keep, ops = self._tables(w)
        w_hat = torch.fft.rfft2(w)
        rhs = -keep * self._advection_hat(w_hat, ops[:, None]) - (self.viscosity * k2 + self.drag) * w_hat
        f_hat = self._forcing_hat(forcing, w)
        if f_hat is not None:
            rhs = rhs + f_hat
        return torch.fft.irfft2(rhs, s=(n, n))

    def advance(self, w: torch.Tensor, t: float, forcing: torch.Tensor | None = None) -> torch.Tensor:
        """Advance vorticity by time ``t``.

        The span is split into ``ceil(t / dt)`` equal steps (each no larger than ``dt``). The mean of
        ``w`` is conserved exactly (decays as ``exp(-drag t)`` with drag); the forcing's mean is ignored
        (vorticity on the torus has zero mean).

        Args:
            w: vorticity ``[B, n, n]``, float32 or float64; the computation runs in this dtype and device.
            t: time to advance, ``>= 0``.
            forcing: time-independent forcing ``[n, n]`` or ``[B, n, n]``, or None.

        Returns:
            ``[B, n, n]``, the vorticity at time ``t`` later, same dtype and device as ``w``.

        Raises:
            SolverDivergedError: the solution became NaN or infinite; the message gives the step.
        """
        self._check_w(w)
        if not (isinstance(t, (int, float)) and math.isfinite(t) and t >= 0):
            raise ValueError(f"NavierStokes2D.advance: t must be a finite float >= 0, got {t!r}")
        f_hat = self._forcing_hat(forcing, w)
        if t == 0:
            return w.clone()
        n = self.resolution
        n_steps = max(1, math.ceil(t / self.dt - 1e-9))
        h = t / n_steps
        k2, keep, ops = self._tables(w)
        half = 0.5 * h * (self.viscosity * k2 + self.drag)  # [n, n//2+1]
        cn = ((1 - half) / (1 + half)).to(ops.dtype)  # Crank-Nicolson factor E
        c = h / (1 + half)
        c_adv = (-c * keep).to(ops.dtype)  # dealiased advection into the update: -c P
        f_term = torch.zeros((), dtype=ops.dtype, device=w.device) if f_hat is None else c * f_hat
        tables = (ops[:, None], cn, c_adv, 0.5 * c_adv, f_term)

        w_hat = torch.fft.rfft2(w)  # [B, n, n//2+1], updated in place from here on
        work = _Workspace.like(w_hat, n)
        done = 0  # steps known to be finite
        while done < n_steps:
            # Check every few steps (a check synchronises a GPU); on NaN/Inf replay from the last good
            # state one step at a time, so the error names the exact step.
            chunk = min(self._CHECK_EVERY, n_steps - done)
            work.good.copy_(w_hat)
            for _ in range(chunk):
                self._step(w_hat, tables, work)
            if not self._finite(w_hat):
                w_hat.copy_(work.good)
                for step in range(done + 1, done + chunk + 1):
                    self._step(w_hat, tables, work)
                    if not self._finite(w_hat):
                        message = self._diverged_message(w, step, n_steps, h)
                        raise SolverDivergedError(message, step=step, time=step * h)
            done += chunk
        return torch.fft.irfft2(w_hat, s=(n, n))

    _CHECK_EVERY = 16

    def _step(self, w_hat: torch.Tensor, tables: tuple, work: _Workspace) -> None:
        """One CN-Heun step in spectral space, in place on ``w_hat``.

        With E the Crank-Nicolson factor, A the advection spectrum, P the 2/3 mask, c = h / (1 + h L / 2):
        predictor ``w* = E w + c (f - P A(w))``, corrector ``w' = E w + c (f - P (A(w) + A(w*)) / 2)``.
        """
        ops, cn, c_adv, c_adv_half, f_term = tables
        torch.addcmul(f_term, cn, w_hat, out=work.base)  # E w + c f
        a0 = self._advection_hat(w_hat, ops, work, out=work.a0)
        predictor = torch.addcmul(work.base, c_adv, a0, out=work.predictor)
        a1 = self._advection_hat(predictor, ops, work, out=work.a1)
        torch.addcmul(work.base, c_adv_half, a0.add_(a1), out=w_hat)

    @staticmethod
    def _finite(w_hat: torch.Tensor) -> bool:
        # Any NaN/Inf on the grid spreads to every mode through the FFT; one mode per sample suffices.
        return bool(torch.isfinite(w_hat[:, 0, 1]).all())

    def _diverged_message(self, w0: torch.Tensor, step: int, n_steps: int, h: float) -> str:
        umax = float(self.velocity(w0).abs().amax())
        courant = umax * h / self.grid.spacing
        return (
            f"NavierStokes2D: the solution became NaN/Inf at step {step} of {n_steps} (t = {step * h:.6g}) "
            f"with dt = {h:.3g}, resolution {self.resolution}, viscosity {self.viscosity:g}; "
            f"the starting Courant number max|u| dt / dx was {courant:.3g}: reduce dt below about "
            f"{self.grid.spacing / max(umax, 1e-12):.2g}"
        )


def _odd_derivative_symbols(kx: torch.Tensor, ky: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The symbols of d/dx and d/dy (times -i) from the wavenumbers ``[n, n//2+1]`` of
    :meth:`PeriodicGrid2D.wavenumbers`: zero on the Nyquist modes, where ``i k`` has no real-valued,
    symmetric meaning (so the discrete operators commute exactly with the grid's rotations and mirrors)."""
    nyq = kx.shape[0] // 2
    dx, dy = kx.clone(), ky.clone()
    dx[:, nyq] = 0.0
    dy[nyq, :] = 0.0
    return dx, dy


def solenoidal_projection(uv: torch.Tensor) -> torch.Tensor:
    """The divergence-free part of a periodic velocity field (the Leray projection, spectral).

    ``u_hat <- u_hat - d (d . u_hat) / |d|^2`` per wavevector, with ``d`` the spectral derivative symbols of
    :class:`NavierStokes2D` (odd derivatives zero on the Nyquist modes); the mean and the modes where
    ``d = 0`` stay. So the field's spectral divergence vanishes, its curl (:meth:`NavierStokes2D.vorticity`)
    is unchanged, a velocity the solver computed from a vorticity is left as it is, and the map commutes
    with the square grid's rotations and mirrors (acting on the components as a vector). It does not
    depend on the domain length. Differentiable; computed in the input's precision.

    Args:
        uv: ``[..., 2, n, n]``, the x (last grid axis) and y components on a periodic square grid, n even.

    Returns:
        The projected field, same shape and dtype.
    """
    if not isinstance(uv, torch.Tensor) or uv.ndim < 3 or uv.shape[-3] != 2 or uv.shape[-1] != uv.shape[-2]:
        got = list(uv.shape) if isinstance(uv, torch.Tensor) else type(uv).__name__
        raise ValueError(f"solenoidal_projection: expected [..., 2, n, n], got {got}")
    n = uv.shape[-1]
    if n % 2:
        raise ValueError(f"solenoidal_projection: the grid size must be even, got {n}")
    real = torch.float64 if uv.dtype == torch.float64 else torch.float32
    # integer wavenumbers (a period of 2 pi): the projection does not depend on the scale
    dx, dy = _odd_derivative_symbols(
        *PeriodicGrid2D(n, 2 * math.pi).wavenumbers(dtype=real, device=uv.device)
    )
    d2 = dx**2 + dy**2
    inv = torch.where(d2 > 0, 1.0 / torch.where(d2 > 0, d2, 1.0), 0.0)
    u_hat, v_hat = torch.fft.rfft2(uv).unbind(-3)
    div = (dx * u_hat + dy * v_hat) * inv  # (d . u_hat) / |d|^2
    projected = torch.stack([u_hat - dx * div, v_hat - dy * div], dim=-3)
    return torch.fft.irfft2(projected, s=(n, n)).to(uv.dtype)
