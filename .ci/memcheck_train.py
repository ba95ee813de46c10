"""A short training run for valgrind memcheck (.ci/memcheck): every public
entry point of the model once, on a small problem."""

import numpy as np
import vaefast
rng = np.random.default_rng(0)
X = (rng.random((300, 64)) < 0.3).astype(np.float32)
m = vaefast.VAE(64, hidden=(32,), latent_dim=4, seed=0)
h = m.fit(X, epochs=2, batch_size=64, progress=False, validation_data=X[:50])
m.encode(X[:7]); m.sample(5, seed=1); m.elbo(X[:9]); m.log_likelihood(X[:5], n_samples=4)
m.loss_and_grad(X[:10])
print("loss", h.history["loss"])
