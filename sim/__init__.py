"""sim: symmetry-preserving surrogate simulation of PDEs and weather.

Stages (each imports only from those above it): groups, discretize, solvers, data, nn, models, train,
evaluate, cli. See shared/ARCHITECTURE.md and docs/conventions.md.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "build_model"]


def build_model(config, overrides=()):
    """Build a registered model from a YAML path, a mapping or a ``sim.models.ModelConfig``.

    The models (and torch) are imported on the first call, so ``import sim`` stays light.

    Args:
        config: a YAML file (the model config at the top level or under ``model:``), a mapping, or a
            ``ModelConfig``.
        overrides: dotted ``KEY=VALUE`` strings, e.g. ``["model.hidden=16"]``.

    Returns:
        The ``nn.Module``, mapping ``[B, in_channels, H, W] -> [B, out_channels, H, W]``.

    Raises:
        sim.config.ConfigError: a one-line message naming the file and the key.

    Example:
        >>> model = sim.build_model("configs/ns2d/gcnn_p4m.yaml")
    """
    from sim.models.registry import build_model as _build_model

    return _build_model(config, overrides)
