"""The cylinder-flow data layout, its graph windows and batches (a synthetic file: no solver run)."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import torch
import xarray as xr

from sim.config import ConfigError, from_dict
from sim.data.cylinder import (
    CylinderDataConfig,
    CylinderWindows,
    collate_graphs,
    cylinder_statistics,
    draw_geometry,
    preview_cylinder,
)
from sim.data.ns2d import DataFileError
from sim.discretize import NodeType


def test_layout_padding_and_node_types(cylinder_file):
    with xr.open_dataset(cylinder_file) as ds:
        assert ds["velocity"].dims == ("sample", "time", "node", "component")
        n = ds["num_nodes"].values
        assert ds.sizes["node"] == n.max() and len(set(n.tolist())) > 1  # meshes differ per sample
        short = int(np.argmin(n))
        assert np.isnan(ds["velocity"][short, :, n[short] :].values).all()  # padding
        assert np.isfinite(ds["velocity"][short, :, : n[short]].values).all()
        types = ds["node_type"][short, : n[short]].values
        assert set(np.unique(types)) == {
            NodeType.NORMAL,
            NodeType.INFLOW,
            NodeType.OUTFLOW,
            NodeType.WALL_BOUNDARY,
        }
        wall = types == NodeType.WALL_BOUNDARY
        assert np.all(ds["velocity"][short, :, : n[short]].values[:, wall] == 0)
        re = ds["u_mean"].values * ds["diameter"].values / ds.attrs["viscosity"]
        np.testing.assert_allclose(re, ds["reynolds"].values)


def test_windows_and_batches(cylinder_file):
    data = CylinderWindows(cylinder_file, history=2, horizon=2, samples=[2, 0])
    assert data.windows_per_sample == 6 - 3 and len(data) == 6
    with xr.open_dataset(cylinder_file) as ds:
        v = ds["velocity"].values
        n0 = int(ds["num_nodes"][0])
    item = data[4]  # sample 0, first frame 1
    assert data.index(4) == (0, 1)
    assert item["velocity"].shape == (4, n0, 2) and item["node_type"].shape == (n0,)
    np.testing.assert_array_equal(item["velocity"].numpy(), v[0, 1:5, :n0])
    src, dst = item["edge_index"]
    assert src.max() < n0 and torch.equal(
        torch.sort(src * n0 + dst).values, torch.sort(dst * n0 + src).values
    )
    batch = collate_graphs([data[0], data[4]])
    sizes = [len(data[0]["node_type"]), n0]
    assert batch.velocity.shape == (sum(sizes), 4, 2) and batch.num_graphs == 2
    assert batch.batch.bincount().tolist() == sizes
    assert int(batch.edge_index[:, batch.edge_index[0] >= sizes[0]].min()) >= sizes[0]  # offsets
    loader = torch.utils.data.DataLoader(data, batch_size=3, collate_fn=collate_graphs, num_workers=2)
    assert [b.num_graphs for b in loader] == [3, 3]


def test_statistics_are_rotation_invariant_scales(cylinder_file):
    stats = cylinder_statistics(cylinder_file, [0, 1])
    with xr.open_dataset(cylinder_file) as ds:
        v = np.concatenate([ds["velocity"][s, :, : int(ds["num_nodes"][s])].values.ravel() for s in (0, 1)])
    assert stats["velocity_std"] == pytest.approx(np.sqrt(np.mean(v.astype(np.float64) ** 2)))
    assert 0 < stats["delta_std"] < stats["velocity_std"] and 0.01 < stats["edge_std"] < 0.1


def test_geometry_draws_are_reproducible_and_in_range():
    config = CylinderDataConfig()
    a, b = draw_geometry(config, 3), draw_geometry(config, 3)
    assert a == b and a != draw_geometry(config, 4)
    assert config.reynolds[0] <= a.reynolds <= config.reynolds[1]
    assert a.u_mean == pytest.approx(a.reynolds * config.viscosity / a.diameter)


def test_bad_configs_and_files(cylinder_file, tmp_path):
    with pytest.raises(ConfigError, match="diameter: the largest cylinder"):
        from_dict(CylinderDataConfig, {"diameter": [0.1, 0.3]})
    with pytest.raises(ConfigError, match="solver.length: expected at least mesh.length=1.6"):
        from_dict(CylinderDataConfig, {"solver": {"length": 1.0}})
    with pytest.raises(DataFileError, match="missing variable"):
        other = tmp_path / "other.nc"
        xr.Dataset({"u": ("x", np.zeros(3))}).to_netcdf(other)
        CylinderWindows(other)
    with pytest.raises(DataFileError, match="too few for history=4, horizon=4"):
        CylinderWindows(cylinder_file, history=4, horizon=4)
    # a node without a type, and faces that point outside the mesh
    broken = tmp_path / "broken.nc"
    broken.write_bytes(cylinder_file.read_bytes())
    with netCDF4.Dataset(broken, "a") as nc:
        nc["node_type"][1, 0] = -1
    with pytest.raises(DataFileError, match="sample 1: node_type missing on 1 of its"):
        CylinderWindows(broken, samples=[1])[0]
    with netCDF4.Dataset(broken, "a") as nc:
        nc["node_type"][1, 0] = 0
        nc["cells"][1, 0, 0] = 10_000
    with pytest.raises(DataFileError, match="sample 1: cells point outside its"):
        CylinderWindows(broken, samples=[1])[0]


def test_preview(cylinder_file, tmp_path):
    png = preview_cylinder(cylinder_file, tmp_path / "p.png")
    assert png.stat().st_size > 10_000
