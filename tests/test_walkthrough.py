"""The by-hand walkthrough: every printed step recomputed independently."""

import io
import re

import numpy as np

from vaefast import reference as ref
from vaefast.walkthrough import print_walkthrough, walkthrough_steps


def test_steps_in_the_documented_order():
    names = list(walkthrough_steps())
    order = ["encoder", "head: mu", "head: logvar", "standard deviation", "eps", "offset",
             "z = mu", "decoder", "output", "dKL/dmu", "dKL/dsigma", "dL/dy"]
    positions = [next(i for i, n in enumerate(names) if key in n) for key in order]
    assert positions == sorted(positions)


def test_steps_against_plain_numpy():
    s = list(walkthrough_steps(seed=3).values())
    x, h, mu, logvar, sigma, eps, offset, z, g, y, dmu, dsigma, dy = s
    params = ref.init_params(4, (3,), 2, seed=3, dtype=np.float64)
    (W1, b1), (Wh, bh) = params["encoder"][0], params["head"]
    (W3, b3), (W4, b4) = params["decoder"][0], params["output"]
    np.testing.assert_allclose(h, np.maximum(x @ W1 + b1, 0))
    np.testing.assert_allclose(mu, h @ Wh[:, :2] + bh[:2])
    np.testing.assert_allclose(logvar, h @ Wh[:, 2:] + bh[2:])
    np.testing.assert_allclose(sigma, np.sqrt(np.exp(logvar)))
    np.testing.assert_allclose(offset, sigma * eps)
    np.testing.assert_allclose(z, mu + sigma * eps)
    np.testing.assert_allclose(g, np.maximum(z @ W3 + b3, 0))
    np.testing.assert_allclose(y, g @ W4 + b4)
    np.testing.assert_allclose(dmu, mu)
    np.testing.assert_allclose(dsigma, sigma - 1 / sigma)
    np.testing.assert_allclose(dy, y - x)


def test_gradients_against_finite_differences():
    s = walkthrough_steps(seed=1)
    mu, sigma = s["head: mu = h·W_mu + b_mu"], s["standard deviation: sigma = exp(logvar / 2)"]
    x, y = s["x (3 examples × 4 features)"], s["output: y = g·W4 + b4"]

    def kl(m, sd):
        return 0.5 * np.sum(sd**2 + m**2 - 1 - np.log(sd**2))

    h = 1e-6
    for i in np.ndindex(mu.shape):
        e = np.zeros_like(mu)
        e[i] = h
        assert abs((kl(mu + e, sigma) - kl(mu - e, sigma)) / (2 * h) - s["KL gradient dKL/dmu = mu"][i]) < 1e-6
        num = (kl(mu, sigma + e) - kl(mu, sigma - e)) / (2 * h)
        assert abs(num - s["KL gradient dKL/dsigma = sigma − 1/sigma"][i]) < 1e-6
    for i in np.ndindex(y.shape):
        e = np.zeros_like(y)
        e[i] = h
        num = (ref.gaussian_loss(y + e, x)[0].sum() - ref.gaussian_loss(y - e, x)[0].sum()) / (2 * h)
        assert abs(num - s["reconstruction gradient dL/dy = y − x"][i]) < 1e-6


def test_printout_has_every_step():
    buf = io.StringIO()
    print_walkthrough(file=buf)
    text = buf.getvalue()
    assert len(re.findall(r"^\[\d+\] ", text, flags=re.M)) == len(walkthrough_steps())
    assert "[13] reconstruction gradient dL/dy = y − x" in text
