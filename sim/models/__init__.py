"""Composed networks selected by name from configs: G-CNN ResNet/U-Net, a steerable (O(2)) ResNet,
plain-CNN and FNO-2D baselines; mesh GNNs (sim.models.meshgraphnet); weather models on the sphere
(sim.models.sphere: an SO(3)-equivariant GraphCast-style network and the GraphCast-like baseline;
sim.models.sfno), built with build_sphere_model from the data's channels.

``build_model(config)`` makes any registered model from a YAML file, a mapping or a :class:`ModelConfig`;
every model maps ``[B, in_channels, H, W] -> [B, out_channels, H, W]`` and exposes ``in_type`` and
``out_type`` for the equivariance kit (``sim.testing.assert_equivariant``).
"""

from sim.models.cnn import CNNResNet, CNNUNet, count_parameters, match_width
from sim.models.fno import FNO2d, SpectralConv2d
from sim.models.gcnn import GCNNResNet, GCNNUNet
from sim.models.registry import (
    MODELS,
    SPHERE_MODELS,
    ModelConfig,
    build_model,
    build_sphere_model,
    load_model_config,
)
from sim.models.steerable import SteerableResNet

__all__ = [
    "MODELS",
    "SPHERE_MODELS",
    "CNNResNet",
    "CNNUNet",
    "FNO2d",
    "GCNNResNet",
    "GCNNUNet",
    "ModelConfig",
    "SpectralConv2d",
    "SteerableResNet",
    "build_model",
    "build_sphere_model",
    "count_parameters",
    "load_model_config",
    "match_width",
]
