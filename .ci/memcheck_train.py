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
# the model family: count likelihoods with size factors, learned variances,
# a conditional model (csrc/likelihood.c and the [x | c] layers of csrc/vae_layers.c)
counts = rng.poisson(3.0, (120, 13)).astype(np.float32)
s = rng.uniform(0.5, 2.0, 120).astype(np.float32)
for kw in (dict(likelihood="poisson"), dict(likelihood="negative_binomial", n_conditions=3),
           dict(likelihood="gaussian", variance="feature"),
           dict(likelihood="gaussian", variance="sample", n_conditions=2)):
    C = kw.get("n_conditions", 0)
    c = np.eye(C, dtype=np.float32)[rng.integers(0, C, 120)] if C else None
    sf = s if kw["likelihood"] != "gaussian" else None
    m = vaefast.VAE(13, hidden=(7,), latent_dim=2, seed=0, **kw)
    m.fit(counts, c=c, size_factors=sf, epochs=1, batch_size=32, progress=False)
    m.reconstruct(counts[:5], c=None if c is None else c[:5])
    m.log_likelihood(counts[:3], n_samples=3, c=None if c is None else c[:3])
print("model family ok")
