"""A user's program, checked by `mypy --strict` in .ci/typecheck (not a
pytest module): the public API's annotations are precise enough that these
types are inferred, not Any. It also runs (python tests/typing/usage.py)."""

import numpy as np
from numpy.typing import NDArray
from typing_extensions import assert_type

import vaefast
import vaefast.ops
import vaefast.random
import vaefast.reference
from vaefast.training import History

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]


def main() -> None:
    X = np.random.default_rng(0).random((64, 12), dtype=np.float32)
    model = vaefast.VAE(12, hidden=(16,), latent_dim=3, seed=1)
    history = model.fit(X, epochs=1, batch_size=16, optimizer="adam", progress=False)
    assert_type(history, History)
    mu, logvar = model.encode(X)
    assert_type(mu, F32)
    assert_type(model.decode(mu), F32)
    assert_type(model.elbo(X, seed=0), F64)
    assert_type(model.log_likelihood(X, n_samples=2), F64)
    assert_type(model.get_weights(), dict[str, F32])
    assert_type(model.step_, int)
    loss, grads = model.loss_and_grad(X)
    assert_type(loss, float)
    assert_type(vaefast.ops.linear(X, np.ones((12, 4), np.float32), activation="relu"), F32)
    z, kl = vaefast.ops.reparameterize(mu, logvar, seed=1, step=0, return_kl=True)
    assert_type(kl, F32)
    assert_type(vaefast.ops.reparameterize(mu, logvar, seed=1, step=0), F32)
    assert_type(vaefast.random.normal(0, (2, 3)), F32)
    assert_type(vaefast.isa(), str)
    params = vaefast.reference.init_params(12, hidden=(16,), latent_dim=3)
    assert_type(params, vaefast.reference.Params)
    restored = vaefast.VAE.from_bytes(model.to_bytes())
    assert_type(restored, vaefast.VAE)


if __name__ == "__main__":
    main()
