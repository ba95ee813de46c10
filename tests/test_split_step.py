"""The training step split for data parallelism (vf_vae_shard_grads +
vf_vae_apply_update) and the gradient buffer exposed without a copy.

Oracles: the fused one-process step (vf_vae_train_step) must equal the split
step bit for bit when the shard is the whole batch; shards with row offsets
must sum to the whole-batch gradient within the float32 summation-order
bound, with the per-row terms measured from single-row gradients.
"""

import gc

import numpy as np
import pytest

import vaefast
from vaefast.ops import reparameterization_noise

ADAM = (1e-3, 0.9, 0.999, 1e-8, 0.0, "adam")


def model():
    return vaefast.VAE(20, hidden=(16,), latent_dim=4, seed=6)


def batch(n=48):
    return np.random.default_rng(2).random((n, 20)).astype(np.float32)


def test_grads_array_is_the_c_buffer_and_keeps_the_model_alive():
    m = model()
    g = m._core.grads_array()
    assert g.dtype == np.float32 and g.shape == (m.num_params(),) and g.flags.writeable
    m.loss_and_grad(batch())
    np.testing.assert_array_equal(g, m._core.get_buffer(1))  # sees what C wrote
    g[:3] = [1.0, 2.0, 3.0]  # and C sees what we write
    np.testing.assert_array_equal(m._core.get_buffer(1)[:3], [1.0, 2.0, 3.0])
    assert np.shares_memory(g, m._core.grads_array())
    del m
    gc.collect()
    assert g[:3].tolist() == [1.0, 2.0, 3.0]  # the core outlives the model


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_split_step_on_the_whole_batch_equals_the_fused_step(optimizer):
    X = batch()
    fused, split = model(), model()
    for m in (fused, split):
        m.optimizer_ = optimizer  # fit() would zero the moments: they start at zero
    args = (1e-3, 0.9, 0.999, 1e-8, 0.0, optimizer)
    for step in range(3):
        fused._core.train_step(X, fused.seed, step, *args[:5], optimizer, 1.0)
        sums = np.zeros(3)
        assert split._core.shard_grads(X, split.seed, step, 0, len(X), 1.0, sums) == 0
        assert split._core.apply_update(step, *args) == 0
    for which in (0, 2, 3):
        np.testing.assert_array_equal(split._core.get_buffer(which),
                                      fused._core.get_buffer(which))


def test_shards_with_row_offsets_sum_to_the_batch_gradient():
    X, m = batch(), model()
    B, u = len(X), 2.0 ** -24
    m.loss_and_grad(X)
    whole = m._core.get_buffer(1).astype(np.float64)
    total, sums = np.zeros_like(whole), np.zeros(3)
    loss_sum = 0.0
    for lo, hi in ((0, 20), (20, 21), (21, 48)):  # uneven shards
        assert m._core.shard_grads(X[lo:hi], m.seed, 0, lo, B, 1.0, sums) == 0
        total += m._core.get_buffer(1)
        loss_sum += sums[0]
    # per-row terms: the gradient of each row alone, with its own eps
    eps = reparameterization_noise(m.seed, 0, (B, m.latent_dim))
    abs_terms = np.zeros_like(whole)
    for i in range(B):
        m.loss_and_grad(X[i:i + 1], eps=eps[i:i + 1])
        abs_terms += np.abs(m._core.get_buffer(1)) / B
    gamma = B * u / (1 - B * u)
    # three partial sums, then two float32 additions of them in float64 here
    bound = 2 * gamma * abs_terms + 4 * u * np.abs(whole)
    assert np.all(np.abs(total - whole) <= bound)
    want_loss, _ = m.loss_and_grad(X)
    np.testing.assert_allclose(loss_sum / B, want_loss, rtol=1e-6)


def test_empty_shard_and_bad_offsets():
    m = model()
    m.loss_and_grad(batch())
    sums = np.ones(3)
    assert m._core.shard_grads(batch(0), 0, 0, 0, 8, 1.0, sums) == 0
    assert not m._core.get_buffer(1).any() and not sums.any()
    bad = vaefast._core.status_error
    for row0, total in ((-1, 48), (1, 48), (0, 0)):  # rows past the batch, empty batch
        status = m._core.shard_grads(batch(), 0, 0, row0, total, 1.0, sums)
        with pytest.raises(ValueError):
            bad(status, "shard_grads")
    with pytest.raises(ValueError):
        bad(m._core.apply_update(0, -1.0, *ADAM[1:]), "apply_update")


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_update_by_slices_equals_the_whole_update(optimizer):
    # the data-parallel ranks each update one slice (apply_update_slice, on a
    # copy of the slice's parameters): element-wise, so slices cut anywhere
    # (here unaligned, one empty) give the whole-buffer update's bits, and
    # the model's own parameters are left alone
    args = (1e-3, 0.9, 0.999, 1e-8, 0.01, optimizer)
    whole, parts = model(), model()
    for step in range(3):
        for m in (whole, parts):
            m.loss_and_grad(batch())
        whole._core.apply_update(step, *args)
        n, before = parts.num_params(), parts._core.get_buffer(0)
        new = before.copy()
        for lo, hi in ((0, 7), (7, 7), (7, n // 3 + 5), (n // 3 + 5, n)):
            assert parts._core.apply_update_slice(lo, hi, new[lo:hi], step, *args) == 0
        np.testing.assert_array_equal(parts._core.get_buffer(0), before)
        parts._core.set_buffer(0, new)
        for which in (0, 2, 3):
            np.testing.assert_array_equal(parts._core.get_buffer(which),
                                          whole._core.get_buffer(which))
    assert not np.array_equal(whole._core.get_buffer(0), model()._core.get_buffer(0))


def test_update_slice_refuses_bad_bounds():
    core = model()._core
    p = np.zeros(4, dtype=np.float32)
    with pytest.raises(ValueError, match="lo, hi"):
        core.apply_update_slice(-1, 3, p[:4], 0, *ADAM)
    with pytest.raises(ValueError, match="lo, hi"):
        core.apply_update_slice(0, core.num_params + 1, p, 0, *ADAM)
    with pytest.raises(ValueError, match="params must hold"):
        core.apply_update_slice(0, 3, p, 0, *ADAM)
    assert core.apply_update_slice(0, 4, p, 0, 1e-3, 0.9, 0.999, 1e-8, -1.0, "adam") != 0


def test_use_grads_computes_into_the_callers_buffer():
    """vf_vae_use_grads (the shared-memory exchange's slot): the gradient
    lands in the caller's buffer, the update reads it from there, and the
    results are bit for bit those of a model computing into its own."""
    X = batch()
    own, lent = model(), model()
    buf = np.full(own.num_params(), np.nan, np.float32)
    lent._core.use_grads(buf)
    np.testing.assert_array_equal(buf, own._core.get_buffer(1))  # the current gradient, copied
    for step in range(2):
        for m in (own, lent):
            assert m._core.shard_grads(X, m.seed, step, 0, len(X), 1.0, np.zeros(3)) == 0
        np.testing.assert_array_equal(buf.view(np.uint32),
                                      own._core.get_buffer(1).view(np.uint32))
        for m in (own, lent):
            assert m._core.apply_update(step, *ADAM) == 0
        np.testing.assert_array_equal(lent._core.get_buffer(0), own._core.get_buffer(0))
    lent._core.use_grads(None)  # back to its own buffer, holding the last gradient
    np.testing.assert_array_equal(lent._core.get_buffer(1), buf)
    before = buf.copy()
    assert lent._core.shard_grads(X[:5], lent.seed, 2, 0, 5, 1.0, np.zeros(3)) == 0
    np.testing.assert_array_equal(buf, before)  # no longer written
    assert not np.array_equal(lent._core.get_buffer(1), before)


def test_use_grads_refuses_bad_buffers_and_resizing():
    m = model()
    with pytest.raises(ValueError, match="grads must hold"):
        m._core.use_grads(np.zeros(m.num_params() - 1, np.float32))
    buf = np.zeros(m.num_params(), np.float32)
    m._core.use_grads(buf)
    with pytest.raises(ValueError, match="use_grads"):  # one caller's buffer at a time
        m._core.use_grads(np.zeros(m.num_params(), np.float32))
    with pytest.raises(ValueError, match="set_norm"):  # would grow the parameter buffers
        m._core.set_norm(1, 0)
    m._core.use_grads(None)
    m._core.use_grads(None)  # already its own: nothing to do
    m._core.set_norm(1, 0)  # and now it may grow
    assert m._core.num_params > len(buf)


def test_a_model_freed_while_computing_into_a_callers_buffer_leaves_it_alone():
    """vf_vae_destroy frees the model's own gradient buffer, never the
    caller's: freeing NumPy's memory would be a double free when NumPy
    frees it too (glibc aborts; the sanitizer job, .ci/sanitize, runs this
    file and reports the first free)."""
    m = model()
    n = m.num_params()
    buf = np.zeros(n, np.float32)
    m._core.use_grads(buf)
    assert m._core.shard_grads(batch(), m.seed, 0, 0, 48, 1.0, np.zeros(3)) == 0
    got = buf.copy()
    assert np.any(got != 0)
    del m
    gc.collect()
    buf[:] = 1.0  # still ours to write
    assert buf.sum() == n and np.all(np.isfinite(got))


def test_use_params_trains_and_reads_in_the_callers_buffer():
    """vf_vae_use_params (the shared-memory exchange's weights): the model
    reads its weights from the caller's buffer and the slice update writes
    there, bit for bit as a model with its own buffer; use_params(None)
    copies the current weights back into the model's own buffer."""
    X = batch()
    own, lent = model(), model()
    buf = lent._core.get_buffer(0).copy()  # the caller fills it (vf_vae_use_params)
    lent._core.use_params(buf)
    n, half = own.num_params(), own.num_params() // 2
    for step in range(3):
        for m in (own, lent):
            assert m._core.shard_grads(X, m.seed, step, 0, len(X), 1.0, np.zeros(3)) == 0
        assert own._core.apply_update(step, *ADAM) == 0
        lent._core.hold_write(True)
        try:  # two slices, in place on the lent buffer, as two ranks would
            for lo, hi in ((0, half), (half, n)):
                assert lent._core.apply_update_slice(lo, hi, buf[lo:hi], step, *ADAM,
                                                     locked=True) == 0
        finally:
            lent._core.hold_write(False)
        np.testing.assert_array_equal(buf.view(np.uint32),
                                      own._core.get_buffer(0).view(np.uint32))
    np.testing.assert_array_equal(lent.encode(X)[0], own.encode(X)[0])
    buf[:] = 0.0  # the model reads the buffer itself: all weights zero now
    mu = lent.encode(X)[0]
    assert np.all(mu == 0.0)
    lent._core.use_params(None)  # back to its own buffer, with the current (zero) weights
    buf[:] = 1.0
    np.testing.assert_array_equal(lent.encode(X)[0], mu)


def test_use_params_and_hold_write_refuse_misuse():
    m = model()
    with pytest.raises(ValueError, match="params must hold"):
        m._core.use_params(np.zeros(m.num_params() + 1, np.float32))
    buf = m._core.get_buffer(0).copy()
    m._core.use_params(buf)
    with pytest.raises(ValueError, match="use_params"):  # one caller's buffer at a time
        m._core.use_params(buf.copy())
    with pytest.raises(ValueError, match="set_norm"):  # would grow the parameter buffers
        m._core.set_norm(1, 0)
    m._core.use_params(None)
    m._core.use_params(None)  # already its own: nothing to do
    with pytest.raises(RuntimeError, match="without hold_write"):
        m._core.hold_write(False)
    with pytest.raises(RuntimeError, match="needs hold_write"):
        m._core.apply_update_slice(0, 4, buf[:4], 0, *ADAM, locked=True)
    m._core.hold_write(True)
    with pytest.raises(RuntimeError, match="twice"):
        m._core.hold_write(True)
    m._core.hold_write(False)


def test_readers_wait_while_the_write_lock_is_held():
    """hold_write(True) keeps readers out until hold_write(False): the
    exchange holds it while other ranks write the shared weights, so an
    encode on another thread sees whole steps."""
    import threading
    m = model()
    X = batch()
    done = threading.Event()
    m._core.hold_write(True)
    try:
        t = threading.Thread(target=lambda: (m.encode(X), done.set()))
        t.start()
        assert not done.wait(0.3)  # the reader is kept out
    finally:
        m._core.hold_write(False)
    assert done.wait(10)
    t.join()


def test_a_model_freed_while_reading_a_callers_params_leaves_them_alone():
    """vf_vae_destroy frees the model's own parameter buffer, never the
    caller's (the sanitizer job runs this file), and a core freed with its
    write lock held releases it first."""
    m = model()
    buf = m._core.get_buffer(0).copy()
    m._core.use_params(buf)
    m._core.hold_write(True)
    del m
    gc.collect()
    buf[:] = 1.0  # still ours to write
    assert buf.sum() == len(buf)
