"""sim: symmetry-preserving surrogate simulation of PDEs and weather.

Stages (each imports only from those above it): groups, discretize, solvers, data, nn, models, train,
evaluate, cli. See shared/ARCHITECTURE.md and docs/conventions.md.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
