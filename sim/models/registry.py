"""Models by name: a strict config dataclass, a name -> builder table, and ``build_model``.

A model config is YAML either at the top level of a file or under a ``model:`` key (experiment files
hold ``model:``, ``train:`` and ``data:`` sections; only ``model:`` is read here)::

    model:
      name: gcnn_resnet          # gcnn_resnet | gcnn_unet | cnn_resnet | cnn_unet
      group: P4M                 # D4; C4 is P4
      in_fields: 5x pseudoscalar # 4 vorticity frames + the forcing
      out_fields: 1x pseudoscalar
      hidden: 8
      blocks: 4
      kernel_size: 5
      padding: circular

    model = build_model("configs/ns2d/gcnn_p4m.yaml")       # or a dict, or a ModelConfig

CNN baselines take an explicit ``width`` or ``match_params_of: gcnn_resnet`` (or ``gcnn_unet``): the
width whose parameter count is closest to that G-CNN built from the same config (same group, fields,
hidden, blocks, levels, kernel, padding, norm, activation).

Sphere models (``equivariant_graphcast``, ``graphcast``, ``sfno``; :data:`SPHERE_MODELS`) take their
channels from the weather data (``data.variables``), so they have no ``in_fields``/``out_fields`` and are
built by :func:`build_sphere_model` with the channel counts the weather stepper
(:mod:`sim.train.weather`) works out.

The steerable ResNet (``name: steerable_resnet``) takes ``group: O2`` or ``SO2``; its field types are the
restrictions to D4 / C4 (:meth:`ModelConfig.planar_group`), under which it is exactly equivariant, and
``hidden`` counts copies of its hidden irreps block (see :mod:`sim.models.steerable`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

from torch import nn

from sim.config import (
    ConfigError,
    apply_overrides,
    cfield,
    from_dict,
    load_config,
    nonnegative,
    positive,
    read_yaml,
)
from sim.discretize.latlon import LatLonGrid
from sim.groups.fields import FieldType
from sim.groups.planar import PlanarGroup, dihedral, group_from_name
from sim.models.cnn import CNNResNet, CNNUNet, count_parameters, match_width
from sim.models.fno import FNO2d
from sim.models.gcnn import GCNNResNet, GCNNUNet
from sim.models.meshgraphnet import EGNN, EquivariantMeshGraphNet, MeshGraphNet, TensorProductMeshNet
from sim.models.sfno import SFNO
from sim.models.sphere import EquivariantSphereNet, GraphCastNet
from sim.models.steerable import SteerableResNet, parse_steerable_fields, steerable_planar_group

__all__ = [
    "MESH_MODELS",
    "MODELS",
    "SPHERE_MODELS",
    "ModelConfig",
    "build_model",
    "build_sphere_model",
    "load_model_config",
]

ModelName = Literal[
    "gcnn_resnet",
    "gcnn_unet",
    "cnn_resnet",
    "cnn_unet",
    "fno2d",
    "steerable_resnet",
    "meshgraphnet",
    "equivariant_meshgraphnet",
    "egnn",
    "tensor_product_mesh",
    "equivariant_graphcast",
    "graphcast",
    "sfno",
]
MESH_MODELS = ("meshgraphnet", "equivariant_meshgraphnet", "egnn", "tensor_product_mesh")  # graphs
SPHERE_MODELS = ("equivariant_graphcast", "graphcast", "sfno")  # weather on lat-lon grids
_EXACT_GROUPS = "C1, C2, C4, D1, D2, D4, P4 or P4M"
_CONTINUOUS_GROUPS = ("O2", "SO2")  # steerable_resnet only


def _is_exact_group(name: str) -> bool:
    try:
        return group_from_name(name).exact_on_grid
    except ValueError:
        return False


def _is_group_name(name: str) -> bool:
    return _is_exact_group(name) or str(name).upper() in _CONTINUOUS_GROUPS


def _is_odd_positive(k: int) -> bool:
    return k >= 1 and k % 2 == 1


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A model, by registered name and hyperparameters (``build_model`` makes it).

    Attributes:
        name: ``"gcnn_resnet"``, ``"gcnn_unet"``, ``"cnn_resnet"``, ``"cnn_unet"``, ``"fno2d"`` or
            ``"steerable_resnet"``.
        in_fields: input field type, e.g. ``"5x pseudoscalar"`` (physical fields, no regular ones).
        out_fields: output field type, e.g. ``"1x pseudoscalar"``.
        group: the symmetry group (G-CNNs), or the group the CNN's field types are declared under;
            ``"O2"`` or ``"SO2"`` for ``steerable_resnet`` (and only there).
        hidden: G-CNN regular fields (at the finest level for U-Nets); steerable ResNet: copies of the
            hidden irreps block ``0+ + 0- + 1 + 2``.
        blocks: residual blocks (ResNets), or per level in the encoder and in the decoder (U-Nets).
        levels: 2x downsamplings (U-Nets only).
        kernel_size: odd.
        padding: ``"circular"`` (periodic domains) or ``"zeros"`` (bounded ones).
        norm: ``"group"``, ``"batch"``, ``"instance"`` or ``"none"`` (see ``sim.nn.RegularNorm``);
            for ``steerable_resnet``: ``"batch"`` (``sim.nn.SteerableBatchNorm``), ``"group"``
            (``sim.nn.SteerableGroupNorm``, per sample) or ``"none"``.
        norm_groups: GroupNorm groups: the largest divisor of each width that is at most this (1: one
            group, a layer norm over all features of a sample).
        activation: ``"gelu"``, ``"relu"`` or ``"silu"``.
        width: CNN and FNO baselines: hidden channels (at the finest level for U-Nets).
        match_params_of: CNN and FNO baselines: instead of ``width``, the G-CNN (built from this config)
            whose parameter count the baseline matches.
        modes: FNO: Fourier modes per axis (``blocks`` is the number of Fourier layers).
        latent: mesh models: the width of every MLP and latent feature (``blocks`` is the number of
            message-passing steps; MeshGraphNets: 128 and 15).
        vectors: ``equivariant_meshgraphnet``: latent vector channels per node and edge;
            ``tensor_product_mesh``: ``1o`` channels per node (and half as many ``2e``).
        mesh_splits: ``equivariant_graphcast``, ``graphcast``: the finest icosahedral level of the
            multi-mesh (GraphCast: 6; 4 has 2562 nodes, enough for 5.625 degrees).
        gradient_checkpointing: sphere graph models: recompute each processor block in the backward pass
            (less memory, about a third more time).

    Sphere models: ``latent`` is the width (SFNO: its embedding), ``blocks`` the processor steps (SFNO:
    its spectral layers), ``vectors`` the vector channels of ``equivariant_graphcast``.

    Mesh models (``meshgraphnet``, ``equivariant_meshgraphnet``, ``egnn``, ``tensor_product_mesh``: the
    SO(3) tensor-product layers on the plane z = 0) map a velocity history on a
    mesh to the next velocity: ``in_fields`` is ``T x vector`` (``T = data.history``), ``out_fields``
    ``1x vector``; ``group`` and the grid keys do not apply to them (the equivariant ones are exactly
    E(2)-equivariant, the baseline is not).
    """

    name: ModelName
    in_fields: str | None = cfield(None, doc="input field type, e.g. '5x pseudoscalar' (not sphere models)")
    out_fields: str | None = cfield(None, doc="output field type, e.g. '1x pseudoscalar' (not sphere models)")
    group: str = cfield(
        "D4",
        check=_is_group_name,
        expected=f"a group acting exactly on the grid: {_EXACT_GROUPS}",  # or O2 / SO2: steerable_resnet
    )
    hidden: int = cfield(8, **positive(), doc="G-CNN regular fields")
    blocks: int = cfield(4, **nonnegative(), doc="residual blocks (per level for U-Nets)")
    levels: int = cfield(2, **positive(), doc="U-Net downsamplings")
    kernel_size: int = cfield(5, check=_is_odd_positive, expected="an odd int >= 1")
    padding: Literal["circular", "zeros"] = "circular"
    norm: Literal["group", "batch", "instance", "none"] = "group"
    norm_groups: int = cfield(1, **positive())
    activation: Literal["gelu", "relu", "silu"] = "gelu"
    width: int | None = cfield(None, **positive(), doc="CNN hidden channels")
    match_params_of: Literal["gcnn_resnet", "gcnn_unet"] | None = cfield(
        None, doc="CNN: match the parameter count of this G-CNN"
    )
    modes: int = cfield(12, **positive(), doc="FNO Fourier modes per axis")
    latent: int = cfield(128, **positive(), doc="mesh models: latent width")
    vectors: int = cfield(32, **positive(), doc="equivariant_meshgraphnet: latent vector channels")
    mesh_splits: int = cfield(
        4, check=lambda v: 0 <= v <= 8, expected="an int in [0, 8]", doc="sphere graph models: finest mesh"
    )
    gradient_checkpointing: bool = cfield(False, doc="sphere graph models: recompute processor blocks")

    def __post_init__(self) -> None:
        if self.name in SPHERE_MODELS:
            self._check_sphere()
            return
        for key in ("in_fields", "out_fields"):
            if getattr(self, key) is None:
                raise ConfigError(f"missing key '{key}' (expected a str for {self.name})", key=key)
        if self.name == "steerable_resnet":
            self._check_steerable()
            return
        if self.name in MESH_MODELS:
            self._check_mesh()
            return
        if not _is_exact_group(self.group):
            raise ConfigError(
                f"group: expected a group acting exactly on the grid: {_EXACT_GROUPS}, got {self.group!r}",
                key="group",
            )
        group = group_from_name(self.group)
        for key in ("in_fields", "out_fields"):
            spec = getattr(self, key)
            try:
                field_type = FieldType.parse(group, spec)
            except ValueError as err:
                raise ConfigError(
                    f"{key}: expected a field type like '5x pseudoscalar + 1x vector', got {spec!r} ({err})",
                    key=key,
                ) from None
            if field_type.has_regular:
                raise ConfigError(
                    f"{key}: expected physical fields (scalar, pseudoscalar, vector, irreps), got {spec!r} "
                    "(regular fields are internal G-CNN features)",
                    key=key,
                )
        if self.name.startswith("gcnn"):
            self._refuse_cnn_size("a G-CNN's size is 'hidden'", suffix=f" for {self.name}")
        elif (self.width is None) == (self.match_params_of is None):
            given = "both" if self.width is not None else "neither"
            raise ConfigError(
                f"width: expected exactly one of width and match_params_of for {self.name}, got {given}",
                key="width",
            )

    def _check_steerable(self) -> None:
        if str(self.group).upper() not in _CONTINUOUS_GROUPS:
            raise ConfigError(
                f"group: expected O2 or SO2 for steerable_resnet, got {self.group!r}", key="group"
            )
        for key in ("in_fields", "out_fields"):
            try:
                parse_steerable_fields(self.group, getattr(self, key))
            except ValueError as err:
                raise ConfigError(f"{key}: {err}", key=key) from None
        if self.norm not in ("batch", "group", "none"):
            raise ConfigError(
                f"norm: expected 'batch', 'group' or 'none' for steerable_resnet, got {self.norm!r}",
                key="norm",
            )
        self._refuse_cnn_size("a steerable ResNet's size is 'hidden'")

    def _check_sphere(self) -> None:
        for key in ("in_fields", "out_fields"):
            if getattr(self, key) is not None:
                raise ConfigError(
                    f"{key}: sphere models take their channels from data.variables; leave it unset for "
                    f"{self.name}, got {getattr(self, key)!r}",
                    key=key,
                )
        self._refuse_cnn_size("a sphere model's size is 'latent' and 'blocks'")

    @property
    def is_sphere(self) -> bool:
        """A weather model on lat-lon grids (:data:`SPHERE_MODELS`)."""
        return self.name in SPHERE_MODELS

    @property
    def is_mesh(self) -> bool:
        """A model of graphs (meshes) rather than grids."""
        return self.name in MESH_MODELS

    def mesh_history(self) -> int:
        """Mesh models: the velocity frames ``T`` of ``in_fields`` (``T x vector``)."""
        return FieldType.parse(dihedral(4), self.in_fields).num_fields

    def _check_mesh(self) -> None:
        for key, spec in (("in_fields", self.in_fields), ("out_fields", self.out_fields)):
            try:
                field_type = FieldType.parse(dihedral(4), spec)
            except ValueError:
                field_type = None
            want = "'1x vector'" if key == "out_fields" else "'T x vector' (T velocity frames)"
            if (
                field_type is None
                or field_type != FieldType.parse(dihedral(4), f"{field_type.num_fields}x vector")
                or (key == "out_fields" and field_type.num_fields != 1)
            ):
                raise ConfigError(f"{key}: expected {want} for {self.name}, got {spec!r}", key=key)
        self._refuse_cnn_size("a mesh model's size is 'latent' and 'blocks'")

    def _refuse_cnn_size(self, why: str, *, suffix: str = "") -> None:
        """ConfigError if ``width`` or ``match_params_of`` is set: CNN and FNO baselines only."""
        for key in ("width", "match_params_of"):
            if getattr(self, key) is not None:
                raise ConfigError(
                    f"{key}: only CNN baselines take it ({why}), got {getattr(self, key)!r}{suffix}", key=key
                )

    def planar_group(self) -> PlanarGroup:
        """The planar group the field types are declared under: ``group`` itself, or its exact subgroup on
        the grid for ``steerable_resnet`` (D4 for O2, C4 for SO2)."""
        if self.name == "steerable_resnet":
            return steerable_planar_group(self.group)
        if self.name in MESH_MODELS:  # the field words only: vectors under the square's symmetries
            return dihedral(4)
        return group_from_name(self.group)


@dataclasses.dataclass(frozen=True)
class _ModelSection:
    """A file whose model config sits under ``model:`` (errors then name ``model.<key>``)."""

    model: ModelConfig


def _common(cfg: ModelConfig) -> dict[str, Any]:
    return {
        "in_fields": cfg.in_fields,
        "out_fields": cfg.out_fields,
        "blocks": cfg.blocks,
        "kernel_size": cfg.kernel_size,
        "padding": cfg.padding,
        "norm": cfg.norm,
        "norm_groups": cfg.norm_groups,
        "activation": cfg.activation,
    }


def _build_gcnn_resnet(cfg: ModelConfig) -> nn.Module:
    return GCNNResNet(cfg.group, hidden=cfg.hidden, **_common(cfg))


def _build_gcnn_unet(cfg: ModelConfig) -> nn.Module:
    return GCNNUNet(cfg.group, hidden=cfg.hidden, levels=cfg.levels, **_common(cfg))


def _cnn_width(cfg: ModelConfig) -> int:
    """The explicit width, or the one matching the parameter count of ``cfg.match_params_of``."""
    if cfg.width is not None:
        return cfg.width
    reference = dataclasses.replace(cfg, name=cfg.match_params_of, match_params_of=None)
    target = count_parameters(MODELS[reference.name](reference))
    candidate = dataclasses.replace(cfg, match_params_of=None, width=1)
    return match_width(lambda w: MODELS[cfg.name](dataclasses.replace(candidate, width=w)), target)


def _build_cnn_resnet(cfg: ModelConfig) -> nn.Module:
    return CNNResNet(width=_cnn_width(cfg), group=cfg.group, **_common(cfg))


def _build_cnn_unet(cfg: ModelConfig) -> nn.Module:
    return CNNUNet(width=_cnn_width(cfg), levels=cfg.levels, group=cfg.group, **_common(cfg))


def _build_fno2d(cfg: ModelConfig) -> nn.Module:
    return FNO2d(
        in_fields=cfg.in_fields,
        out_fields=cfg.out_fields,
        width=_cnn_width(cfg),
        modes=cfg.modes,
        layers=max(1, cfg.blocks),
        group=cfg.group,
    )


def _build_steerable_resnet(cfg: ModelConfig) -> nn.Module:
    return SteerableResNet(
        in_fields=cfg.in_fields,
        out_fields=cfg.out_fields,
        hidden=cfg.hidden,
        blocks=cfg.blocks,
        kernel_size=cfg.kernel_size,
        padding=cfg.padding,
        group=cfg.group,
        norm=cfg.norm,  # type: ignore[arg-type]  (validated by ModelConfig)
        activation=cfg.activation,
    )


def _mesh_common(cfg: ModelConfig) -> dict[str, Any]:
    return {"dim": 2, "in_vectors": cfg.mesh_history(), "latent": cfg.latent, "steps": cfg.blocks}


MODELS: Mapping[str, Callable[[ModelConfig], nn.Module]] = MappingProxyType(
    {
        "gcnn_resnet": _build_gcnn_resnet,
        "gcnn_unet": _build_gcnn_unet,
        "cnn_resnet": _build_cnn_resnet,
        "cnn_unet": _build_cnn_unet,
        "fno2d": _build_fno2d,
        "steerable_resnet": _build_steerable_resnet,
        "meshgraphnet": lambda cfg: MeshGraphNet(**_mesh_common(cfg)),
        "equivariant_meshgraphnet": lambda cfg: EquivariantMeshGraphNet(
            vectors=cfg.vectors, **_mesh_common(cfg)
        ),
        "egnn": lambda cfg: EGNN(**_mesh_common(cfg)),
        "tensor_product_mesh": lambda cfg: TensorProductMeshNet(vectors=cfg.vectors, **_mesh_common(cfg)),
    }
)
"""Registered model names -> builders ``ModelConfig -> nn.Module`` (the names of ``ModelConfig.name``)."""


def load_model_config(
    source: str | os.PathLike | Mapping[str, Any] | ModelConfig, overrides: Sequence[str] = ()
) -> ModelConfig:
    """Read a model config from a YAML file, a mapping or an instance, strictly.

    A file (or mapping) with a ``model`` key holds the model config under it, and every other top-level
    section is ignored; otherwise the whole file is the model config.

    Args:
        source: a YAML path, a mapping, or a :class:`ModelConfig` (returned as is without overrides).
        overrides: dotted ``KEY=VALUE`` strings, e.g. ``model.hidden=16`` (or ``hidden=16`` for a file
            without a ``model`` section).

    Returns:
        The :class:`ModelConfig`.

    Raises:
        ConfigError: one line naming the file (or ``<dict>``) and the key: a missing file, invalid YAML,
            an unknown or missing key, a wrong type or value.
        TypeError: ``source`` is none of the kinds above.
    """
    if isinstance(source, ModelConfig):
        return load_config(ModelConfig, source, overrides)
    if isinstance(source, (str, os.PathLike)):
        label = os.fspath(source)
        data: Mapping[str, Any] = read_yaml(source)
    elif isinstance(source, Mapping):
        label, data = "<dict>", source
    else:
        raise TypeError(
            f"model config: expected a YAML path, a mapping or a ModelConfig, got {type(source).__name__}"
        )
    if "model" in data:
        section = {"model": data["model"]}
        if overrides:
            section = apply_overrides(section, overrides, cls=_ModelSection)
        return from_dict(_ModelSection, section, source=label).model
    if overrides:
        data = apply_overrides(data, overrides, cls=ModelConfig)
    return from_dict(ModelConfig, data, source=label)


def build_model(
    config: str | os.PathLike | Mapping[str, Any] | ModelConfig, overrides: Sequence[str] = ()
) -> nn.Module:
    """Build a registered model from a config (see :func:`load_model_config`).

    Args:
        config: a YAML path, a mapping, or a :class:`ModelConfig`.
        overrides: dotted ``KEY=VALUE`` strings.

    Returns:
        The model, with ``in_type``, ``out_type``, ``in_channels`` and ``out_channels``; it maps
        ``[B, in_channels, H, W] -> [B, out_channels, H, W]``.

    Raises:
        ConfigError: as :func:`load_model_config`.

    Example:
        >>> model = build_model("configs/ns2d/gcnn_p4m.yaml")
        >>> model(torch.randn(2, model.in_channels, 64, 64)).shape
        torch.Size([2, 1, 64, 64])
    """
    cfg = load_model_config(config, overrides)
    if cfg.is_sphere:
        raise ConfigError(
            f"name: {cfg.name} takes its channels from the weather data: build it with "
            "build_sphere_model(config, ...) or through the weather stepper (sim.train.weather)",
            key="name",
        )
    return MODELS[cfg.name](cfg)


def build_sphere_model(
    config: ModelConfig,
    *,
    in_scalars: int,
    in_vectors: int,
    out_scalars: int,
    out_vectors: int,
    global_vectors: int,
    in_channels: int,
    out_channels: int,
    grid: LatLonGrid,
) -> nn.Module:
    """A sphere model (:data:`SPHERE_MODELS`) for a channel layout and grid.

    The graph models (:mod:`sim.models.sphere`) take ``in_scalars``, ``in_vectors``, ``out_scalars``,
    ``out_vectors`` and ``global_vectors``; SFNO takes plain ``in_channels`` and ``out_channels`` (winds as
    two components) on ``grid``, which must then be equiangular with poles or Gaussian.

    Raises:
        ConfigError: not a sphere model, or a grid SFNO cannot use (one line).
    """
    cfg = config
    if not cfg.is_sphere:
        raise ConfigError(f"name: expected a sphere model ({', '.join(SPHERE_MODELS)}), got {cfg.name!r}")
    if cfg.name == "sfno":
        kinds = {"equiangular_with_poles": "equiangular", "gaussian": "legendre-gauss"}
        if grid.kind not in kinds:
            raise ConfigError(
                f"name: sfno needs an equiangular grid with poles or a Gaussian grid, got {grid.kind} "
                f"({grid.nlat} x {grid.nlon})",
                key="name",
            )
        return SFNO(
            in_channels,
            out_channels,
            nlat=grid.nlat,
            nlon=grid.nlon,
            grid=kinds[grid.kind],
            embed_dim=cfg.latent,
            num_layers=max(1, cfg.blocks),
        )
    common = dict(
        in_scalars=in_scalars,
        in_vectors=in_vectors,
        out_scalars=out_scalars,
        out_vectors=out_vectors,
        global_vectors=global_vectors,
        latent=cfg.latent,
        steps=cfg.blocks,
        checkpoint=cfg.gradient_checkpointing,
    )
    if cfg.name == "equivariant_graphcast":
        return EquivariantSphereNet(vectors=cfg.vectors, **common)
    return GraphCastNet(**common)
