"""Shared test set-up: every test starts from the same random state, so failures reproduce."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 (legacy global state, for code that still uses it)
    yield


@pytest.fixture(scope="session")
def load_script():
    """Import ``scripts/NAME.py`` as a module (for the scripts' smoke tests); removed again at the end."""
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "scripts"
    loaded = []

    def load(name: str):
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look the module up by name
        spec.loader.exec_module(module)
        loaded.append(name)
        return module

    yield load
    for name in loaded:
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests (small ops run faster without the thread pool on the shared
    cores); the previous setting is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def cylinder_file(tmp_path_factory):
    """A small cylinder-flow file (3 samples x 6 frames, coarse meshes) written without the solver
    (``sim.data.cylinder.write_synthetic_cylinder``); shared, read-only."""
    from sim.data.cylinder import write_synthetic_cylinder

    return write_synthetic_cylinder(tmp_path_factory.mktemp("cylinder") / "cyl.nc", samples=3, frames=6)
