"""The shared equivariance test kit: does ``f(g . x) == g . f(x)`` for every group element?

Every layer and model of the toolkit is tested through :func:`assert_equivariant`::

    from sim.testing import assert_equivariant
    report = assert_equivariant(model)                       # uses model.in_type / model.out_type
    report = assert_equivariant(layer, in_type, out_type)    # or explicit field types

For groups that act exactly on the grid (C_N, D_N with N in {1, 2, 4}) it checks every element in
float64 and float32 against tight tolerances. For the others (C8, D16, ...) the action itself rotates by
interpolation, so only an approximate equality can hold: errors are measured on the inscribed disk, and a
tolerance must be given explicitly.

Graphs (mesh GNNs, point clouds) are checked under E(d) = rotations, reflections and translations
combined with node and edge permutations by :func:`assert_en_equivariant`, each input and output moved
as its kind says (:data:`EN_KINDS`: positions, vectors, scalars, edge_index, ...)::

    assert_en_equivariant(model, ["vector", "scalar", "position", "edge_index"], ("vector", "scalar"),
                          [velocity, node_type, pos, edge_index])

Sphere models (grid and mesh node sets, three edge sets; :mod:`sim.models.sphere`) are checked under
SO(3) with everything rotated and relabelled, and under the discretization's own symmetries acting on the
data, by :func:`assert_sphere_equivariant`.

Continuous-group field types (:class:`sim.groups.o2.Irreps` of SO(2)/O(2)) are checked on a planar
subgroup, ``equivariance_errors(layer, group=dihedral(4))`` (the types restricted with ``.restrict``),
or against any list of angles with :func:`equivariance_errors_vs_angle` (the input rotated by
interpolation, errors on the inscribed disk).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn

from sim.groups.action import act, disk_mask, transform_grid
from sim.groups.fields import FieldType
from sim.groups.planar import PlanarGroup, cyclic, dihedral

__all__ = [
    "EN_KINDS",
    "EquivarianceReport",
    "assert_en_equivariant",
    "assert_equivariant",
    "assert_o3_equivariant",
    "assert_sphere_equivariant",
    "en_elements",
    "en_equivariance_errors",
    "equivariance_errors",
    "equivariance_errors_vs_angle",
    "o3_elements",
    "o3_equivariance_error",
    "random_field",
    "sphere_equivariance_errors",
]

# Worst relative error allowed for groups that act exactly on the grid.
EXACT_TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


@dataclass(frozen=True)
class EquivarianceReport:
    """Relative errors ``||f(g x) - g f(x)|| / ||g f(x)||`` per group element (on the disk mask for
    approximate groups), for one dtype."""

    dtype: torch.dtype
    errors: dict[int, float]

    @property
    def worst(self) -> float:
        return max(self.errors.values())

    @property
    def worst_element(self) -> int:
        return max(self.errors, key=self.errors.get)


def random_field(
    field_type: FieldType,
    size: int | tuple[int, int],
    *,
    batch: int = 2,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    smooth: float | None = None,
) -> torch.Tensor:
    """A random tensor in the layout of ``field_type``, optionally low-passed (Gaussian, ``smooth`` px)."""
    H, W = (size, size) if isinstance(size, int) else size
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *field_type.channel_shape(), H, W, generator=gen, dtype=torch.float64)
    if smooth:
        ky = torch.fft.fftfreq(H, dtype=torch.float64)[:, None]
        kx = torch.fft.rfftfreq(W, dtype=torch.float64)[None, :]
        damp = torch.exp(-2 * (torch.pi * smooth) ** 2 * (kx**2 + ky**2))
        x = torch.fft.irfft2(torch.fft.rfft2(x) * damp, s=(H, W))
        x = x / x.std()
    return x.to(dtype)


def _is_field_type(t) -> bool:
    """A FieldType, or an object with its interface (e.g. ``Irreps.restrict(group)``)."""
    return isinstance(t, FieldType) or (
        isinstance(getattr(t, "group", None), PlanarGroup)
        and all(hasattr(t, a) for a in ("matrices", "check_tensor", "channel_shape", "is_regular"))
    )


def _types(fn, in_type, out_type, group: PlanarGroup | None = None) -> tuple[FieldType, FieldType]:
    in_type = in_type if in_type is not None else getattr(fn, "in_type", None)
    out_type = out_type if out_type is not None else getattr(fn, "out_type", None)
    if group is not None:  # continuous-group types (Irreps) restricted to a planar group
        in_type = in_type.restrict(group) if hasattr(in_type, "restrict") else in_type
        out_type = out_type.restrict(group) if hasattr(out_type, "restrict") else out_type
    if not _is_field_type(in_type) or not _is_field_type(out_type):
        raise TypeError(
            "give in_type and out_type, or a module with FieldType attributes in_type and out_type"
        )
    if in_type.group != out_type.group:
        raise ValueError(f"in_type is of {in_type.group}, out_type of {out_type.group}")
    return in_type, out_type


def equivariance_errors(
    fn: Callable[[torch.Tensor], torch.Tensor],
    in_type: FieldType | None = None,
    out_type: FieldType | None = None,
    *,
    size: int | tuple[int, int] = 16,
    batch: int = 2,
    dtype: torch.dtype = torch.float64,
    elements: Iterable[int] | None = None,
    inputs: torch.Tensor | None = None,
    seed: int = 0,
    smooth: float | None = None,
    margin: float = 0.0,
    train: bool = False,
    group: PlanarGroup | None = None,
) -> EquivarianceReport:
    """Relative equivariance error of ``fn`` for each group element, in one dtype.

    Args:
        fn: a callable or ``nn.Module``; a module is deep-copied, cast to ``dtype`` and put in eval mode
            (or train mode with ``train=True``), so the original is untouched.
        in_type, out_type: field types of the input and output (default: ``fn.in_type``, ``fn.out_type``).
        size: grid side(s) of the random input.
        batch: batch size of the random input.
        dtype: float64 or float32.
        elements: which elements (default: all).
        inputs: use this input instead of a random one.
        seed: for the random input.
        smooth: low-pass the random input (pixels); useful for approximate groups.
        margin: for groups that act only approximately, compare inside the disk of radius
            ``size/2 - margin`` (the corners leave the grid when rotated).
        train: evaluate a module in train mode.
        group: restrict continuous-group types (anything with ``.restrict(group)``, e.g.
            :class:`sim.groups.o2.Irreps`) to this planar group and check its elements.

    Returns:
        An :class:`EquivarianceReport`.
    """
    in_type, out_type = _types(fn, in_type, out_type, group)
    group = in_type.group
    if isinstance(fn, nn.Module):
        fn = copy.deepcopy(fn).to(dtype)
        fn.train(train)
    x = (
        random_field(in_type, size, batch=batch, dtype=dtype, seed=seed, smooth=smooth)
        if inputs is None
        else inputs
    )
    x = x.to(dtype)
    with torch.no_grad():
        y = fn(x)
        out_type.check_tensor(y, "output")
        mask = None
        if not group.exact_on_grid:
            H, W = y.shape[-2:]
            if H != W:
                raise ValueError(f"approximate groups need square grids, got {H}x{W}")
            mask = disk_mask(H, margin=margin, dtype=dtype, device=y.device)
        errors = {}
        for g in elements if elements is not None else group.elements():
            expected = act(y, out_type, g)
            got = fn(act(x, in_type, g))
            diff = got - expected
            if mask is not None:
                diff, expected = diff * mask, expected * mask
            errors[int(g)] = float(
                torch.linalg.vector_norm(diff) / torch.linalg.vector_norm(expected).clamp_min(1e-300)
            )
    return EquivarianceReport(dtype, errors)


def assert_equivariant(
    fn: Callable[[torch.Tensor], torch.Tensor],
    in_type: FieldType | None = None,
    out_type: FieldType | None = None,
    *,
    dtypes: Iterable[torch.dtype] = (torch.float64, torch.float32),
    tol: float | dict | None = None,
    group: PlanarGroup | None = None,
    **kwargs,
) -> dict[torch.dtype, EquivarianceReport]:
    """Assert ``fn(g . x) == g . fn(x)`` for every element ``g``, in each dtype; return the reports.

    Tolerances on the worst relative error: 1e-10 (float64) and 1e-5 (float32) for groups exact on the
    grid; for other groups ``tol`` must be given (a float, or a dict by dtype).

    Raises:
        AssertionError: naming the dtype, the worst element (as ``r^k s^m``) and its error.
    """
    in_type, out_type = _types(fn, in_type, out_type, group)
    group = in_type.group
    if tol is None and not group.exact_on_grid:
        raise ValueError(f"{group.name} acts only approximately on a pixel grid: give tol explicitly")
    reports = {}
    for dtype in dtypes:
        report = equivariance_errors(fn, in_type, out_type, dtype=dtype, group=group, **kwargs)
        limit = tol.get(dtype) if isinstance(tol, dict) else tol
        limit = EXACT_TOLERANCE[dtype] if limit is None else limit
        g = report.worst_element
        k, m = group.decompose(g)
        assert report.worst <= limit, (
            f"not equivariant under {group.name} in {dtype}: worst relative error {report.worst:.3g} "
            f"> {limit:g} at element {g} = r^{k} s^{m} (rotation {360 * k / group.n:g} deg"
            f"{', reflected' if m else ''}); {in_type} -> {out_type}"
        )
        reports[dtype] = report
    return reports


def _element_for_angle(degrees: float, reflect: bool) -> tuple[PlanarGroup, int]:
    """The smallest C_N / D_N containing the rotation by ``degrees`` (times the mirror), and the element."""
    turn = Fraction(degrees / 360).limit_denominator(10_000) % 1
    n, k = turn.denominator, turn.numerator
    group = dihedral(n) if reflect else cyclic(n)
    return group, group.element(k, 1 if reflect else 0)


def equivariance_errors_vs_angle(
    fn: Callable[[torch.Tensor], torch.Tensor],
    in_type=None,
    out_type=None,
    *,
    angles: Iterable[float] = (15.0, 30.0, 45.0, 60.0, 75.0, 90.0),
    reflect: bool = False,
    size: int = 32,
    batch: int = 2,
    dtype: torch.dtype = torch.float64,
    inputs: torch.Tensor | None = None,
    seed: int = 0,
    smooth: float | None = 2.0,
    margin: float = 4.0,
) -> dict[float, float]:
    """Relative equivariance error against rotation angle for continuous-group field types.

    For each angle ``theta`` (degrees, counter-clockwise) the input is rotated on the grid by
    :func:`sim.groups.transform_grid` (exact for multiples of 90 degrees, bilinear interpolation
    otherwise) and its channels by ``in_type.rho(theta, reflect)``; the error
    ``||f(g x) - g f(x)|| / ||g f(x)||`` is measured inside the disk of radius ``size/2 - margin``
    (everywhere for multiples of 90 degrees, which move pixels onto pixels).

    Args:
        fn: a callable or ``nn.Module`` (deep-copied, cast to ``dtype``, eval mode).
        in_type, out_type: types with ``rho(angle, reflect) -> [dim, dim]`` and ``[B, dim, H, W]`` tensors
            (default ``fn.in_type`` / ``fn.out_type``), e.g. :class:`sim.groups.o2.Irreps`.
        angles: rotation angles in degrees.
        reflect: apply the mirror ``x -> -x`` before each rotation.
        size, batch, seed, smooth: the random input (square grid), as :func:`random_field`.
        dtype: float64 or float32.
        inputs: use this input ``[B, dim, size, size]`` instead.
        margin: pixels left out at the rim for angles that are not multiples of 90 degrees.

    Returns:
        ``{angle: relative error}``.
    """
    in_type = in_type if in_type is not None else getattr(fn, "in_type", None)
    out_type = out_type if out_type is not None else getattr(fn, "out_type", None)
    if not (hasattr(in_type, "rho") and hasattr(out_type, "rho")):
        raise TypeError("give in_type and out_type with rho(angle, reflect), e.g. sim.groups.o2.Irreps")
    if isinstance(fn, nn.Module):
        fn = copy.deepcopy(fn).to(dtype)
        fn.eval()
    if inputs is None:
        gen = torch.Generator().manual_seed(seed)
        inputs = torch.randn(batch, in_type.dim, size, size, generator=gen, dtype=torch.float64)
        if smooth:
            ky = torch.fft.fftfreq(size, dtype=torch.float64)[:, None]
            kx = torch.fft.rfftfreq(size, dtype=torch.float64)[None, :]
            damp = torch.exp(-2 * (torch.pi * smooth) ** 2 * (kx**2 + ky**2))
            inputs = torch.fft.irfft2(torch.fft.rfft2(inputs) * damp, s=(size, size))
            inputs = inputs / inputs.std()
    x = inputs.to(dtype)
    in_type.check_tensor(x)
    errors = {}
    with torch.no_grad():
        y = fn(x)
        out_type.check_tensor(y, "output")
        H = y.shape[-1]
        for angle in angles:
            group, g = _element_for_angle(float(angle), reflect)
            theta = math.radians(angle)
            rho_in = torch.tensor(in_type.rho(theta, reflect), dtype=dtype)
            rho_out = torch.tensor(out_type.rho(theta, reflect), dtype=dtype)
            gx = torch.einsum("ij,bjhw->bihw", rho_in, transform_grid(x, group, g))
            expected = torch.einsum("ij,bjhw->bihw", rho_out, transform_grid(y, group, g))
            diff = fn(gx) - expected
            if not group.exact_on_grid:
                mask = disk_mask(H, margin=margin, dtype=dtype)
                diff, expected = diff * mask, expected * mask
            errors[float(angle)] = float(
                torch.linalg.vector_norm(diff) / torch.linalg.vector_norm(expected).clamp_min(1e-300)
            )
    return errors


# ---------------------------------------------------------------------------------------------------
# SO(3) / O(3): features [..., irreps.dim], positions and edge vectors [..., 3]


def o3_elements(*, dtype: torch.dtype = torch.float64, seed: int = 0) -> list[torch.Tensor]:
    """Group elements ``[3, 3]`` to test O(3) equivariance with: two random rotations, an improper
    rotation (inversion times a rotation) and a mirror (x -> -x)."""
    from sim.groups.so3 import random_rotation

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        rotations = [random_rotation(dtype=dtype) for _ in range(3)]
    finally:
        torch.random.set_rng_state(state)
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=dtype))
    return [rotations[0], rotations[1], -rotations[2], mirror]


def o3_equivariance_error(fn: Callable, irreps_in: list, irreps_out, inputs: list, g: torch.Tensor) -> float:
    """``max |f(g . x) - g . f(x)| / max |f(x)|`` for one O(3) element ``g [3, 3]``.

    Args:
        fn: the layer or function, called as ``fn(*inputs)``.
        irreps_in: per input, how ``g`` acts: an irreps string or ``Irreps`` (features ``[..., dim]``
            transformed by ``Irreps.D(g)``), ``"vector"`` (positions or edge vectors ``[..., 3]``,
            multiplied by ``g``) or ``"invariant"`` (left unchanged, e.g. ``edge_index``).
        irreps_out: how ``g`` acts on the output (same choices).
        inputs: the inputs.
        g: the group element.
    """
    from sim.groups.so3 import Irreps

    def act(x, how):
        if how == "invariant":
            return x
        if how == "vector":
            return x @ g.T
        return x @ Irreps(how).D(g).to(x.dtype).T

    out = fn(*inputs)
    moved = fn(*[act(x, how) for x, how in zip(inputs, irreps_in, strict=True)])
    return float(((moved - act(out, irreps_out)).abs().max() / out.abs().max()).detach())


def assert_o3_equivariant(
    fn: Callable, irreps_in: list, irreps_out, inputs: list, *, tol: float = 1e-9, reflections: bool = True
) -> list[float]:
    """Assert ``f(g . x) == g . f(x)`` for the elements of :func:`o3_elements` (rotations only with
    ``reflections=False``), in the inputs' dtype (use float64 for the default ``tol``).

    Returns:
        The error per element.

    Raises:
        AssertionError: naming the worst element and its error.
    """
    dtype = next((x.dtype for x in inputs if torch.is_tensor(x) and x.is_floating_point()), torch.float64)
    elements = o3_elements(dtype=dtype)
    if not reflections:
        elements = [g for g in elements if torch.det(g) > 0]
    errors = [o3_equivariance_error(fn, irreps_in, irreps_out, inputs, g) for g in elements]
    worst = max(range(len(errors)), key=errors.__getitem__)
    assert errors[worst] <= tol, (
        f"not O(3)-equivariant: error {errors[worst]:.3g} > {tol:g} for element {worst} "
        f"(det {float(torch.det(elements[worst])):+.0f})"
    )
    return errors


# ---------------------------------------------------------------------------------------------------
# E(d) x permutations on graphs: positions [N, d], vectors [N, ..., d], scalars [N, ...], edge_index [2, E]

EN_KINDS = ("position", "vector", "scalar", "edge_index", "edge_vector", "edge_scalar", "invariant")
"""How :func:`en_equivariance_errors` moves an input or output (``g = (R, t)``, node permutation ``p``,
edge permutation ``q``; ``x'[k] = x[p[k]]``: new node ``k`` is old node ``p[k]``):

* ``"position"`` ``[N, ..., d]``: ``x[p] @ R.T + t`` (translated);
* ``"vector"`` ``[N, ..., d]``: ``x[p] @ R.T`` (velocities, node vector channels);
* ``"scalar"`` ``[N, ...]``: ``x[p]`` (invariant features, ``node_type``);
* ``"edge_index"`` ``[2, E]``: ``inverse(p)[edge_index[:, q]]`` (the same graph, relabelled and reordered);
* ``"edge_vector"`` ``[E, ..., d]``: ``x[q] @ R.T``; ``"edge_scalar"`` ``[E, ...]``: ``x[q]``;
* ``"invariant"``: unchanged (None, flags, graph-level constants).
"""


def en_elements(
    d: int, *, n: int = 4, dtype: torch.dtype = torch.float64, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Elements ``(R [d, d], t [d])`` of E(d) to test with: random orthogonal ``R`` (Haar, from a QR
    decomposition), alternately proper (det +1) and improper (det -1, a reflection times a rotation),
    and random translations ``t`` with standard normal components. Deterministic in ``seed``.

    Raises:
        ValueError: ``d`` not in {2, 3}, or ``n < 2`` (too few for a rotation and a reflection).
    """
    if d not in (2, 3):
        raise ValueError(f"en_elements: d must be 2 or 3, got {d!r}")
    if n < 2:
        raise ValueError(f"en_elements: n must be >= 2 (a rotation and a reflection), got {n!r}")
    gen = torch.Generator().manual_seed(seed)
    elements = []
    for k in range(n):
        q, r = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=gen))
        q = q * torch.sign(torch.diagonal(r))  # Haar measure on O(d)
        if (torch.det(q) > 0) != (k % 2 == 0):
            q[:, 0] = -q[:, 0]  # even k: a rotation, odd k: an improper rotation
        t = torch.randn(d, dtype=torch.float64, generator=gen)
        elements.append((q.to(dtype), t.to(dtype)))
    return elements


def _en_act(x, kind: str, g, perm, inverse, edge_perm):
    """``x`` moved by the group element ``g = (R, t)`` and the node/edge permutations (see EN_KINDS)."""
    if x is None or kind == "invariant":
        return x
    R, t = g
    if kind == "edge_index":
        return inverse[x[:, edge_perm]]
    x = x[perm] if kind in ("position", "vector", "scalar") else x[edge_perm]
    if kind in ("position", "vector", "edge_vector"):
        x = x @ R.T.to(x.dtype)
    if kind == "position":
        x = x + t.to(x.dtype)
    return x


def _en_structure(kinds, inputs, what: str) -> tuple[list, list]:
    """Flatten matching kinds and values (a sequence, or a mapping of keyword arguments)."""
    if isinstance(inputs, dict) != isinstance(kinds, dict):
        raise TypeError(f"{what}: give kinds and values both as sequences or both as mappings")
    keys = list(inputs) if isinstance(inputs, dict) else list(range(len(inputs)))
    kinds_list = [kinds[k] for k in keys] if isinstance(kinds, dict) else list(kinds)
    if len(kinds_list) != len(keys):
        raise ValueError(f"{what}: {len(kinds_list)} kinds for {len(keys)} values")
    for kind in kinds_list:
        if kind not in EN_KINDS:
            raise ValueError(f"{what}: kind must be one of {', '.join(EN_KINDS)}, got {kind!r}")
    return keys, kinds_list


def en_equivariance_errors(
    fn: Callable,
    kinds_in,
    kinds_out,
    inputs,
    *,
    elements: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
    permute: bool = True,
    dtype: torch.dtype | None = None,
    seed: int = 0,
) -> list[float]:
    """Relative error ``max_k ||f(g . x)_k - g . f(x)_k|| / ||R f(x)_k||`` per group element, on a graph.

    Each element is a rotation or reflection with a translation, ``(R, t)``, combined (with
    ``permute``) with a random relabelling of the nodes and a random reordering of the edges, drawn
    from ``seed``; inputs and outputs move as their kind says (:data:`EN_KINDS`). The error of each
    output ``k`` is relative to the norm of its rotated, untranslated expectation; the worst output
    counts.

    Args:
        fn: a callable or ``nn.Module``, called as ``fn(*inputs)`` (or ``fn(**inputs)`` for a mapping);
            a module is deep-copied, cast to ``dtype`` and put in eval mode, the original is untouched.
        kinds_in: the kind of each input (a sequence, or a mapping with the keys of ``inputs``).
        kinds_out: the kind of the output (a string), or of each output of a returned tuple; None
            outputs are skipped.
        inputs: a sequence or mapping of tensors (floating ones cast to ``dtype``) and other values.
        elements: ``(R [d, d], t [d])`` pairs (default :func:`en_elements` with ``d`` from the inputs);
            ``(torch.eye(d), t)`` checks translations and permutations alone.
        permute: also relabel nodes and reorder edges.
        dtype: float64 or float32 (default: the first floating input's).
        seed: for the permutations.

    Returns:
        The error per element.
    """
    keys, kinds = _en_structure(kinds_in, inputs, "en_equivariance_errors inputs")
    values = [inputs[k] for k in keys]
    if dtype is None:
        dtype = next((v.dtype for v in values if torch.is_tensor(v) and v.is_floating_point()), torch.float64)
    values = [v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v for v in values]
    if isinstance(fn, nn.Module):
        fn = copy.deepcopy(fn).to(dtype)
        fn.eval()
    node_sized = [v for v, k in zip(values, kinds, strict=True) if k in ("position", "vector", "scalar")]
    edges = [v for v, k in zip(values, kinds, strict=True) if k == "edge_index"]
    vectors = [
        v
        for v, k in zip(values, kinds, strict=True)
        if k in ("position", "vector", "edge_vector") and v is not None
    ]
    if not node_sized or len(edges) > 1:
        raise ValueError("en_equivariance_errors: need a node-sized input and at most one edge_index")
    num_nodes = node_sized[0].shape[0]
    num_edges = edges[0].shape[1] if edges else 0
    if elements is None:
        if not vectors:
            raise ValueError(
                "en_equivariance_errors: no position or vector input to read d from; give elements"
            )
        elements = en_elements(vectors[0].shape[-1], dtype=dtype)

    def call(args):
        return fn(**dict(zip(keys, args, strict=True))) if isinstance(inputs, dict) else fn(*args)

    def outputs(y):
        single = isinstance(kinds_out, str)
        ys = [y] if single else list(y)
        ks = [kinds_out] if single else list(kinds_out)
        if len(ks) != len(ys):
            raise ValueError(f"en_equivariance_errors: {len(ks)} output kinds for {len(ys)} outputs")
        return ys, ks

    gen = torch.Generator().manual_seed(seed)
    errors = []
    with torch.no_grad():
        ys, ks = outputs(call(values))
        for g in elements:
            g = (g[0].to(dtype), g[1].to(dtype))
            if permute:
                perm = torch.randperm(num_nodes, generator=gen)
                edge_perm = torch.randperm(num_edges, generator=gen)
            else:
                perm, edge_perm = torch.arange(num_nodes), torch.arange(num_edges)
            inverse = torch.empty_like(perm)
            inverse[perm] = torch.arange(num_nodes)
            moved = [_en_act(v, k, g, perm, inverse, edge_perm) for v, k in zip(values, kinds, strict=True)]
            got, _ = outputs(call(moved))
            worst = 0.0
            for y, y2, k in zip(ys, got, ks, strict=True):
                if y is None:
                    if y2 is not None:
                        raise ValueError("en_equivariance_errors: an output is None for one input only")
                    continue
                expected = _en_act(y, k, g, perm, inverse, edge_perm)
                scale = _en_act(y, "vector" if k == "position" else k, g, perm, inverse, edge_perm)
                diff = torch.linalg.vector_norm((y2 - expected).double())
                worst = max(worst, float(diff / torch.linalg.vector_norm(scale.double()).clamp_min(1e-300)))
            errors.append(worst)
    return errors


def assert_en_equivariant(
    fn: Callable,
    kinds_in,
    kinds_out,
    inputs,
    *,
    dtypes: Iterable[torch.dtype] = (torch.float64, torch.float32),
    tol: float | dict | None = None,
    elements: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
    permute: bool = True,
    seed: int = 0,
) -> dict[torch.dtype, list[float]]:
    """Assert ``f(g . x) == g . f(x)`` on a graph for rotations, reflections, translations and node/edge
    permutations (see :func:`en_equivariance_errors`), in each dtype; return the errors.

    Tolerances on the worst relative error: 1e-10 (float64) and 1e-5 (float32) unless ``tol`` (a float,
    or a dict by dtype) says otherwise. With a plain callable (not an ``nn.Module``) its parameters keep
    their dtype, so only the inputs' dtype changes.

    Example::

        assert_en_equivariant(layer, ["scalar", "position", "edge_index"],
                              ("scalar", "position", "invariant"), [h, pos, edge_index])

    Raises:
        AssertionError: naming the dtype, the element (its determinant) and the error.
    """
    reports = {}
    for dtype in dtypes:
        elems = None if elements is None else [(r.to(dtype), t.to(dtype)) for r, t in elements]
        errors = en_equivariance_errors(
            fn, kinds_in, kinds_out, inputs, elements=elems, permute=permute, dtype=dtype, seed=seed
        )
        limit = tol.get(dtype) if isinstance(tol, dict) else tol
        limit = EXACT_TOLERANCE[dtype] if limit is None else limit
        worst = max(range(len(errors)), key=errors.__getitem__)
        if errors[worst] > limit:
            # the default elements alternate det +1 and det -1 (en_elements)
            det = float(torch.det(elems[worst][0].double())) if elems is not None else (-1) ** worst
            raise AssertionError(
                f"not E(n)-equivariant in {dtype}: relative error {errors[worst]:.3g} > {limit:g} at element "
                f"{worst} (det {det:+.0f}){', nodes and edges permuted' if permute else ''}"
            )
        reports[dtype] = errors
    return reports


# ---------------------------------------------------------------------------------------------------
# SO(3) on the sphere: grid and mesh node sets, three edge sets (sim.models.sphere's signature)


def _relative(got: torch.Tensor, expected: torch.Tensor) -> float:
    diff = torch.linalg.vector_norm((got - expected).double())
    return float(diff / torch.linalg.vector_norm(expected.double()).clamp_min(1e-300))


def _inverse(perm: torch.Tensor) -> torch.Tensor:
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(len(perm), device=perm.device)
    return inverse


def _take(x: torch.Tensor | None, index: torch.Tensor) -> torch.Tensor | None:
    return None if x is None else x[:, index]


def _edge_set(senders: torch.Tensor, receivers: torch.Tensor) -> set:
    return set(zip(senders.tolist(), receivers.tolist(), strict=True))


def sphere_equivariance_errors(
    fn: Callable,
    scalars: torch.Tensor | None,
    vectors: torch.Tensor | None,
    global_vectors: torch.Tensor | None,
    graph,
    *,
    rotations: Iterable[torch.Tensor] | None = None,
    symmetries: Iterable[tuple] | None = None,
    relabel: bool = True,
    dtype: torch.dtype | None = None,
    seed: int = 0,
) -> list[float]:
    """Relative errors of a sphere model ``fn(scalars, vectors, global_vectors, graph) -> (scalars_out
    [B, G, S], vectors_out [B, G, V, 3])`` under rotations, one per element.

    ``graph`` is any NamedTuple with ``grid_pos [G, 3]``, ``mesh_pos [M, 3]``, ``g2m``, ``mesh``, ``m2g``
    (:class:`sim.models.sphere.SphereGraph`). Two actions:

    * ``rotations`` (default: 4 Haar-random rotations from ``seed``): the whole input turned by ``R``:
      positions, ``vectors [B, G, C, 3]`` and ``global_vectors [B, K, 3]``; with ``relabel`` the grid
      and mesh nodes are also relabelled and the edges of each set reordered at random. Expected: vector
      outputs turned by ``R``, scalar outputs unchanged, both relabelled the same way.
    * ``symmetries``: ``(R, grid_perm, mesh_perm)`` with ``R @ grid_pos[i] == grid_pos[grid_perm[i]]``
      (the same for the mesh; :func:`sim.discretize.latlon.grid_permutation`,
      :func:`sim.discretize.icosahedral.vertex_permutation`): a symmetry of the discretization acting on the
      data alone, graph unchanged: fields moved to the rotated points (``f'[:, perm] = R f``) and global
      vectors turned. First each edge set is checked to be mapped onto itself (else ValueError: the graph
      is not symmetric, so no model on it can be).

    Returns:
        Per element, the worst over the two outputs of ``||f(g x) - g f(x)|| / ||g f(x)||``.
    """
    ref = next(v for v in (scalars, vectors, global_vectors) if v is not None)
    dtype = ref.dtype if dtype is None else dtype
    cast = lambda x: None if x is None else x.to(dtype)  # noqa: E731
    scalars, vectors, global_vectors = cast(scalars), cast(vectors), cast(global_vectors)
    graph = graph._replace(grid_pos=graph.grid_pos.to(dtype), mesh_pos=graph.mesh_pos.to(dtype))
    if isinstance(fn, nn.Module):
        fn = copy.deepcopy(fn).to(dtype)
        fn.eval()
    G, M = graph.grid_pos.shape[0], graph.mesh_pos.shape[0]
    gen = torch.Generator().manual_seed(seed)
    turn = lambda x, R: None if x is None else x @ R.T  # noqa: E731
    errors = []
    with torch.no_grad():
        s0, v0 = fn(scalars, vectors, global_vectors, graph)
        if symmetries is None:
            if rotations is None:
                rotations = [R for R, _ in en_elements(3, n=8, seed=seed) if torch.det(R) > 0]
            for R in rotations:
                R = R.to(dtype)
                gp = torch.randperm(G, generator=gen) if relabel else torch.arange(G)
                mp = torch.randperm(M, generator=gen) if relabel else torch.arange(M)
                gi, mi = _inverse(gp), _inverse(mp)

                def edges(e, s_inv, r_inv):
                    e = e[:, torch.randperm(e.shape[1], generator=gen)] if relabel else e
                    return torch.stack([s_inv[e[0]], r_inv[e[1]]])

                moved = graph._replace(
                    grid_pos=graph.grid_pos[gp] @ R.T,
                    mesh_pos=graph.mesh_pos[mp] @ R.T,
                    g2m=edges(graph.g2m, gi, mi),
                    mesh=edges(graph.mesh, mi, mi),
                    m2g=edges(graph.m2g, mi, gi),
                )
                s1, v1 = fn(_take(scalars, gp), turn(_take(vectors, gp), R), turn(global_vectors, R), moved)
                errors.append(max(_relative(s1, s0[:, gp]), _relative(v1, (v0 @ R.T)[:, gp])))
            return errors
        for R, grid_perm, mesh_perm in symmetries:
            R = torch.as_tensor(R).to(dtype)
            gp, mp = torch.as_tensor(grid_perm), torch.as_tensor(mesh_perm)
            for name, e, sp, rp in (
                ("g2m", graph.g2m, gp, mp),
                ("mesh", graph.mesh, mp, mp),
                ("m2g", graph.m2g, mp, gp),
            ):
                if _edge_set(sp[e[0]], rp[e[1]]) != _edge_set(e[0], e[1]):
                    raise ValueError(
                        f"sphere_equivariance_errors: the symmetry does not map graph.{name} onto itself"
                    )
            gi = _inverse(gp)
            # the moved field has f'[:, perm] = R f
            s1, v1 = fn(_take(scalars, gi), turn(_take(vectors, gi), R), turn(global_vectors, R), graph)
            errors.append(max(_relative(s1, s0[:, gi]), _relative(v1, (v0 @ R.T)[:, gi])))
    return errors


def assert_sphere_equivariant(
    fn: Callable,
    scalars: torch.Tensor | None,
    vectors: torch.Tensor | None,
    global_vectors: torch.Tensor | None,
    graph,
    *,
    rotations: Iterable[torch.Tensor] | None = None,
    symmetries: Iterable[tuple] | None = None,
    relabel: bool = True,
    dtypes: Iterable[torch.dtype] = (torch.float64, torch.float32),
    tol: float | dict | None = None,
) -> dict[torch.dtype, list[float]]:
    """Assert :func:`sphere_equivariance_errors` below 1e-10 (float64) and 1e-5 (float32), or ``tol``.

    Example (a lat-lon grid whose spacing divides 36 degrees, the D5 subgroup of the icosahedral group)::

        sym = [(R, grid_permutation(grid, R), vertex_permutation(R, mesh_vertices))
               for R in icosahedral_rotations() if abs(R[2, 2]) == 1]
        assert_sphere_equivariant(model, scalars, vectors, global_vectors, graph, symmetries=sym)

    Raises:
        AssertionError: naming the dtype, the element and the error.
    """
    rotations = None if rotations is None else list(rotations)
    symmetries = None if symmetries is None else list(symmetries)
    reports = {}
    for dtype in dtypes:
        errors = sphere_equivariance_errors(
            fn,
            scalars,
            vectors,
            global_vectors,
            graph,
            rotations=rotations,
            symmetries=symmetries,
            relabel=relabel,
            dtype=dtype,
        )
        limit = tol.get(dtype) if isinstance(tol, dict) else tol
        limit = EXACT_TOLERANCE[dtype] if limit is None else limit
        worst = max(range(len(errors)), key=errors.__getitem__)
        if errors[worst] > limit:
            kind = "symmetry" if symmetries is not None else "rotation"
            raise AssertionError(
                f"not SO(3)-equivariant on the sphere in {dtype}: relative error {errors[worst]:.3g} > "
                f"{limit:g} at {kind} {worst}"
            )
        reports[dtype] = errors
    return reports
