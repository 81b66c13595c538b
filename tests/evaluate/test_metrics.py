"""Metrics against hand-computed values, the energy spectrum against closed forms and Parseval, a whole
rollout evaluation against a direct computation, and the transformed test set: an equivariant stepper
scores the same on it, a CNN does not."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from sim.data import DataFileError
from sim.evaluate import (
    correlation,
    energy_spectrum,
    enstrophy,
    evaluate_rollout,
    relative_l2,
    rmse,
    rollout_to_netcdf,
    save_metrics,
)
from sim.io import OutputError


def test_field_metrics_against_hand_computed_values():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    truth = np.ones((2, 2))
    assert relative_l2(pred, truth) == pytest.approx(math.sqrt(14) / 2)
    assert rmse(pred, truth) == pytest.approx(math.sqrt(14 / 4))
    assert enstrophy(pred) == pytest.approx(30 / 8)
    # centred p = (-1.5, -0.5, 0.5, 1.5), t = (-1.5, 0.5, -0.5, 1.5): 4 / sqrt(5 * 5)
    assert correlation(pred, np.array([[1.0, 3.0], [2.0, 4.0]])) == pytest.approx(0.8)
    assert correlation(2 * pred + 1, pred) == pytest.approx(1.0)
    assert correlation(-pred, pred) == pytest.approx(-1.0)
    batch = np.stack([pred, truth])  # [2, 2, 2]: leading axes are kept
    assert relative_l2(batch, batch).shape == (2,) and np.all(relative_l2(batch, batch) == 0)


@pytest.mark.parametrize(("kx", "ky", "shell"), [(3, 0, 3), (0, 2, 2), (3, 4, 5), (1, 1, 1)])
def test_energy_spectrum_of_one_fourier_mode(kx, ky, shell):
    n, amplitude = 16, 0.7
    x = (np.arange(n) + 0.5) / n
    w = amplitude * np.cos(2 * np.pi * (kx * x[None, :] + ky * x[:, None]))  # [y, x]
    k, E = energy_spectrum(w)
    assert k[0] == 0 and k[-1] == round(math.sqrt(2) * n / 2) and E.shape == k.shape
    # psi = w / |k|^2, |u| = amplitude / |k| |sin|: mean kinetic energy amplitude^2 / (4 |k|^2)
    expected = amplitude**2 / (4 * (2 * np.pi) ** 2 * (kx**2 + ky**2))
    assert E[shell] == pytest.approx(expected, rel=1e-10)
    assert np.abs(np.delete(E, shell)).max() < 1e-14 * expected


def test_energy_spectrum_sums_to_the_mean_kinetic_energy():
    rng = np.random.default_rng(1)
    n, length = 32, 2.0
    w_hat = np.fft.fft2(rng.standard_normal((3, n, n)))
    w_hat[:, n // 2, :] = 0  # no Nyquist modes: velocity by the textbook formula, independently
    w_hat[:, :, n // 2] = 0
    w = np.fft.ifft2(w_hat).real  # [3, n, n]
    kk = 2 * np.pi / length * np.fft.fftfreq(n, d=1.0 / n)
    kx, ky = kk[None, :], kk[:, None]
    k2 = np.where(kx**2 + ky**2 > 0, kx**2 + ky**2, 1.0)
    psi_hat = np.fft.fft2(w) / k2
    u = np.fft.ifft2(1j * ky * psi_hat).real  # u = d psi / dy
    v = np.fft.ifft2(-1j * kx * psi_hat).real  # v = -d psi / dx
    kinetic = 0.5 * (u**2 + v**2).mean(axis=(-2, -1))  # [3]
    _, E = energy_spectrum(w, length=length)
    np.testing.assert_allclose(E.sum(-1), kinetic, rtol=1e-10)
    assert np.all(E >= 0)


def test_evaluate_rollout_against_a_direct_computation(tmp_path, make_code_stepper, make_code_data):
    # a steady stepper (code 0) predicts the last initial frame forever; the truth has 6 frames
    data = make_code_data(tmp_path / "codes.nc", [0.0, 0.0, 1.0], frames=6)
    stepper = make_code_stepper(history=2)
    start, steps = 1, 12  # lead l is frame 2 + l: truth for leads 1..3 only
    roll = rollout_to_netcdf(stepper, data, tmp_path / "r.nc", steps=steps, start=start, progress=False)
    m = evaluate_rollout(roll, data, thresholds=(0.5, 1.0, 100.0))
    with xr.open_dataset(data) as ds:
        w = ds["vorticity"].values.astype(np.float64)  # [3, 6, 8, 8]
    assert m.attrs["truth_leads"] == 3
    for s in (0, 1):
        for lead in (1, 2, 3):
            t, p = w[s, 2 + lead], w[s, 2]
            assert m["rel_l2"].values[s, lead - 1] == pytest.approx(np.linalg.norm(p - t) / np.linalg.norm(t))
            assert m["rmse"].values[s, lead - 1] == pytest.approx(np.sqrt(((p - t) ** 2).mean()))
            assert m["correlation"].values[s, lead - 1] == pytest.approx(
                np.corrcoef(p.ravel(), t.ravel())[0, 1]
            )
            assert m["enstrophy_truth"].values[s, lead - 1] == pytest.approx(0.5 * (t**2).mean())
        assert np.all(np.isnan(m["rel_l2"].values[s, 3:]))  # past the truth
        np.testing.assert_allclose(m["enstrophy_pred"].values[s], 0.5 * (w[s, 2] ** 2).mean(), rtol=1e-6)
    # sample 2 doubles each step and diverges; the means are over the samples still finite
    div = int(m["diverged_at"].values[2])
    assert div > 0 and m["diverged_at"].values[:2].tolist() == [-1, -1]
    assert m["diverged_fraction"].values[div - 2] == 0 and m["diverged_fraction"].values[div - 1] == 1 / 3
    np.testing.assert_allclose(m["rel_l2_mean"].values[:3], m["rel_l2"].values[:, :3].mean(axis=0))  # div > 3
    # time to threshold: random frames differ by rel L2 ~ 1.4 > 1 at lead 1; never 100; divergence counts
    ttt = m["time_to_threshold"].sel(threshold=100.0).values
    assert ttt.tolist() == [-1, -1, div]
    assert m["time_to_threshold"].sel(threshold=0.5).values[:2].tolist() == [1, 1]
    assert m["time_to_threshold_mean"].values.tolist() == [1, 1, -1]
    # reading 5 leads at a time (chunks straddling the truth's end) gives the same
    xr.testing.assert_allclose(evaluate_rollout(roll, data, thresholds=(0.5, 1.0, 100.0), chunk=5), m)
    # spectra at the default leads 1, 10, the last truth lead 3, the last lead 12
    assert m["spectrum_lead"].values.tolist() == [1, 3, 10, 12]
    assert np.isfinite(m["spectrum_truth"].sel(spectrum_lead=3)).all()
    assert np.isnan(m["spectrum_truth"].sel(spectrum_lead=10)).all()
    assert np.isfinite(m["spectrum_pred"].sel(spectrum_lead=12)).all()  # the steady samples


def test_a_strided_rollout_is_compared_with_every_strideth_frame(tmp_path, make_code_stepper, make_code_data):
    # history frames 1, 4 (stride 3); lead l predicts frame 4 + 3 l: leads 1, 2 have truth in 11 frames
    data = make_code_data(tmp_path / "codes.nc", [0.0], frames=11)
    stepper = make_code_stepper(history=2)
    roll = rollout_to_netcdf(stepper, data, tmp_path / "r.nc", steps=3, start=1, stride=3, progress=False)
    m = evaluate_rollout(roll, data)
    with xr.open_dataset(data) as ds, xr.open_dataset(roll) as r:
        w = ds["vorticity"].values.astype(np.float64)  # [1, 11, 8, 8]
        np.testing.assert_array_equal(r["vorticity"].values[0, 0], w[0, 4])  # steady: repeats frame 4
        np.testing.assert_allclose(r["time"].values, ds["time"].values[4] + 1.5 * np.arange(1, 4))
        assert r.attrs["frame_interval"] == 1.5
    assert m.attrs["truth_leads"] == 2
    for lead in (1, 2):
        t, p = w[0, 4 + 3 * lead], w[0, 4]
        assert m["rel_l2"].values[0, lead - 1] == pytest.approx(np.linalg.norm(p - t) / np.linalg.norm(t))
    assert np.isnan(m["rel_l2"].values[0, 2])
    with pytest.raises(DataFileError, match="too few for start=5, history=2 and stride=6"):
        rollout_to_netcdf(stepper, data, tmp_path / "x.nc", steps=1, start=5, stride=6, progress=False)


def test_metrics_are_saved_to_netcdf_and_csv(tmp_path, make_code_stepper, make_code_data):
    data = make_code_data(tmp_path / "codes.nc", [0.0, 0.0])
    roll = rollout_to_netcdf(make_code_stepper(), data, tmp_path / "r.nc", steps=5, progress=False)
    m = evaluate_rollout(roll, None)  # the truth from the rollout's data_file attribute
    nc, csv = save_metrics(m, tmp_path / "m.nc")
    assert csv == tmp_path / "m.csv"
    lines = csv.read_text().splitlines()
    assert lines[0].split(",") == [
        "lead_time",
        "lead_model_time",
        "rel_l2",
        "rmse",
        "correlation",
        "enstrophy_pred",
        "enstrophy_truth",
        "diverged_fraction",
    ]
    assert len(lines) == 6 and lines[1].startswith("1,0.5,")
    assert float(lines[1].split(",")[2]) == pytest.approx(float(m["rel_l2_mean"][0]), rel=1e-7)
    with xr.open_dataset(nc) as back:
        np.testing.assert_allclose(back["rel_l2"].values, m["rel_l2"].values)
    with pytest.raises(OutputError, match="already exists"):
        save_metrics(m, tmp_path / "m.nc")


def _errors(stepper, data, tmp_path, element):
    roll = rollout_to_netcdf(
        stepper, data, tmp_path / f"g{element}.nc", steps=10, element=element, progress=False
    )
    return evaluate_rollout(roll, data)


def test_transformed_test_set_equivariant_stepper_scores_the_same(tmp_path, ns_data, make_model_stepper):
    stepper = make_model_stepper("gcnn_p4m")
    base = _errors(stepper, ns_data, tmp_path, None)
    assert base.attrs["truth_leads"] == 7 and np.isfinite(base["rel_l2"].values[:, :7]).all()
    for g in (1, 5, 6):
        other = _errors(stepper, ns_data, tmp_path, g)
        for name in ("rel_l2", "rmse", "correlation", "enstrophy_pred"):
            np.testing.assert_allclose(other[name].values, base[name].values, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(
            other["spectrum_pred"].values, base["spectrum_pred"].values, rtol=1e-4, atol=1e-12
        )


def test_transformed_test_set_cnn_stepper_scores_differently(tmp_path, ns_data, make_model_stepper):
    stepper = make_model_stepper("cnn")
    base = _errors(stepper, ns_data, tmp_path, None)
    for g in (1, 5):
        other = _errors(stepper, ns_data, tmp_path, g)
        rel = np.abs(other["rel_l2"].values[:, :7] / base["rel_l2"].values[:, :7] - 1)
        assert rel.max() > 1e-2  # measured ~0.1; the G-CNN ~1e-7


def test_evaluate_rejects_a_conflicting_element_and_bad_files(tmp_path, make_code_stepper, make_code_data):
    data = make_code_data(tmp_path / "codes.nc", [0.0])
    roll = rollout_to_netcdf(make_code_stepper(), data, tmp_path / "r.nc", steps=2, element=1, progress=False)
    assert evaluate_rollout(roll, data, element=1).attrs["element"] == 1
    with pytest.raises(ValueError, match="was made with element 1, got 2"):
        evaluate_rollout(roll, data, element=2)
    with pytest.raises(DataFileError, match="expected vorticity\\(sample, lead_time, y, x\\)"):
        evaluate_rollout(data, data)
    (tmp_path / "junk.nc").write_text("not netCDF")
    with pytest.raises(DataFileError, match="junk.nc: cannot be read as netCDF"):
        evaluate_rollout(tmp_path / "junk.nc", data)
    with pytest.raises(DataFileError, match="missing.nc: no such file"):
        evaluate_rollout(roll, tmp_path / "missing.nc")
