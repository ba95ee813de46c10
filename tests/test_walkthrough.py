import io

import numpy as np

from vaefast.reference import walkthrough as wt

# All float64: independent recomputation agrees to rounding (1e-12).
TOL = dict(rtol=1e-12, atol=1e-12)


def test_steps_match_numpy():
    s = wt.walkthrough_steps(0)
    x = s["x"]
    assert x.shape == (3, 4) and s["W1"].shape == (4, 3) and s["mu"].shape == (3, 2)
    pre = x @ s["W1"] + s["b1"]
    np.testing.assert_allclose(s["pre1"], pre, **TOL)
    h = np.where(pre > 0, pre, 0.0)
    np.testing.assert_allclose(s["h"], h, **TOL)
    mu = h @ s["W_mu"] + s["b_mu"]
    lv = h @ s["W_logvar"] + s["b_logvar"]
    np.testing.assert_allclose(s["mu"], mu, **TOL)
    np.testing.assert_allclose(s["sigma"], np.sqrt(np.exp(lv)), **TOL)
    np.testing.assert_allclose(s["z"], mu + s["sigma"] * s["eps"], **TOL)
    np.testing.assert_allclose(s["offset"], s["z"] - mu, **TOL)
    hd = np.maximum(s["z"] @ s["W2"] + s["b2"], 0)
    np.testing.assert_allclose(s["h_dec"], hd, **TOL)
    y = hd @ s["W3"] + s["b3"]
    np.testing.assert_allclose(s["y"], y, **TOL)
    np.testing.assert_allclose(s["dRecon_dy"], y - x, **TOL)
    np.testing.assert_allclose(s["dKL_dmu"], mu, **TOL)
    sig = s["sigma"]
    np.testing.assert_allclose(s["kl"], 0.5 * np.sum(sig**2 + mu**2 - 1 - np.log(sig**2), 1), **TOL)
    np.testing.assert_allclose(s["recon"], np.sum(0.5 * (y - x) ** 2 + 0.5 * np.log(2 * np.pi), 1),
                               **TOL)


def _kl(mu, sigma):
    return 0.5 * np.sum(sigma**2 + mu**2 - 1 - 2 * np.log(sigma))


def _recon(y, x):
    return np.sum(0.5 * (y - x) ** 2)


def test_gradients_finite_differences():
    s = wt.walkthrough_steps(3)
    h = 1e-6  # central differences: error ~h² ≈ 1e-12, rounding ~1e-16/h ≈ 1e-10
    for name, f, arg, other in [("dKL_dmu", lambda a, b: _kl(a, b), "mu", "sigma"),
                                ("dKL_dsigma", lambda a, b: _kl(b, a), "sigma", "mu"),
                                ("dRecon_dy", _recon, "y", "x")]:
        a = s[arg].copy()
        num = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            ap, am = a.copy(), a.copy()
            ap[idx] += h
            am[idx] -= h
            num[idx] = (f(ap, s[other]) - f(am, s[other])) / (2 * h)
        np.testing.assert_allclose(s[name], num, rtol=1e-6, atol=1e-8, err_msg=name)


def test_seed_changes_and_printer():
    a, b = wt.walkthrough_steps(0), wt.walkthrough_steps(1)
    assert not np.allclose(a["W1"], b["W1"])
    np.testing.assert_array_equal(a["z"], wt.walkthrough_steps(0)["z"])
    buf = io.StringIO()
    wt.print_walkthrough(0, out=buf)
    text = buf.getvalue()
    order = [text.index(k) for k in ("ReLU", "standard-deviation", "eps (3×2)", "z = mu + sigma",
                                     "Decoder", "dKL/dsigma", "Reconstruction gradient")]
    assert order == sorted(order)
    assert f"{a['z'][0, 0]:8.3f}" in text
