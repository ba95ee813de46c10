"""The single-cell walkthrough (vaefast/reference/walkthrough_scvi.py) against
independent recomputation: plain NumPy for the layers, the core's own
Philox dropout mask, scipy's gammaln through vaefast.reference.count for the
ZINB log-density, and central differences for the gradients. All float64."""

import io

import numpy as np
import pytest

from vaefast import _core
from vaefast.reference import walkthrough_scvi as wt

TOL = dict(rtol=1e-12, atol=1e-12)  # float64 recomputation in another order


@pytest.mark.parametrize("dispersion", wt.DISPERSIONS)
def test_layers_match_numpy(dispersion):
    s = wt.scvi_walkthrough_steps(1, dispersion)
    x = s["x"]
    np.testing.assert_array_equal(s["library"], x.sum(axis=1))
    np.testing.assert_allclose(s["x_in"], np.log(1 + x), **TOL)
    pre = s["x_in"] @ s["W1"] + s["b1"]
    np.testing.assert_allclose(s["pre1"], pre, **TOL)
    m, v = pre.mean(0), pre.var(0)  # biased variance: what batch norm divides by
    np.testing.assert_allclose(s["bn1"], np.maximum((pre - m) / np.sqrt(v + 1e-3), 0), **TOL)
    core = np.full(s["keep1"].shape, -1.0, np.float32)
    _core.dropout_mask(1, 0, 0, 0, wt.DROPOUT, core)  # the core's draw for seed 1, step 0, layer 0
    np.testing.assert_array_equal(s["keep1"], core)
    np.testing.assert_allclose(s["h"], s["bn1"] * core / 0.9, **TOL)
    np.testing.assert_allclose(s["z"], s["mu"] + np.exp(s["logvar"] / 2) * s["eps"], **TOL)
    onehot = np.eye(2)[wt.BATCH]
    np.testing.assert_allclose(
        s["h_dec"], np.maximum(s["z"] @ s["W2"] + onehot @ s["T2"] + s["b2"], 0), **TOL)
    np.testing.assert_allclose(s["mean"].sum(1), s["library"], **TOL)
    np.testing.assert_allclose(s["mean"], s["library"][:, None] * np.exp(s["rho"])
                               / np.exp(s["rho"]).sum(1, keepdims=True), **TOL)
    rows = s["log_theta"]
    if dispersion == "gene":
        assert (rows == rows[0]).all()
    else:  # cells 0 and 2 share batch 0
        np.testing.assert_array_equal(rows[0], rows[2])
        assert not np.array_equal(rows[0], rows[1])


@pytest.mark.parametrize("dispersion", wt.DISPERSIONS)
def test_zinb_and_gradients(dispersion):
    count = pytest.importorskip("vaefast.reference.count")
    pytest.importorskip("scipy")
    s = wt.scvi_walkthrough_steps(2, dispersion)
    x, lib, lt = s["x"], s["library"], s["log_theta"]

    def recon(rho, pi):
        return -count.log_zinb(x, count.scvi_log_mean(rho, lib), lt, pi).sum(axis=1)

    np.testing.assert_allclose(s["log_p"], count.log_zinb(x, np.log(s["mean"]), lt, s["pi"]),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s["recon"], recon(s["rho"], s["pi"]), rtol=1e-12)
    h = 1e-6  # central differences: truncation ~h², rounding ~1e-16/h
    for name, arg in (("dRecon_drho", "rho"), ("dRecon_dpi", "pi")):
        num = np.zeros_like(s[arg])
        for i, j in np.ndindex(num.shape):
            up = dict(rho=s["rho"].copy(), pi=s["pi"].copy())
            dn = dict(rho=s["rho"].copy(), pi=s["pi"].copy())
            up[arg][i, j] += h
            dn[arg][i, j] -= h
            num[i, j] = (recon(**up)[i] - recon(**dn)[i]) / (2 * h)
        np.testing.assert_allclose(s[name], num, rtol=1e-6, atol=1e-8, err_msg=name)
    # zeros and non-zeros both occur, so both forms were checked
    assert (x == 0).any() and (x > 0).any()


def test_printer_and_bad_dispersion():
    buf = io.StringIO()
    wt.print_scvi_walkthrough(0, out=buf)
    text = buf.getvalue()
    keys = ("log(1 + x)", "batch norm", "T2[batch]", "zero-inflation", "softmax(rho)",
            "ZINB per entry", "dRecon/drho")
    order = [text.index(k) for k in keys]
    assert order == sorted(order)
    s = wt.scvi_walkthrough_steps(0)
    assert f"{s['recon'][1]:8.3f}" in text
    with pytest.raises(ValueError, match="dispersion"):
        wt.scvi_walkthrough_steps(0, "gene-cell")
