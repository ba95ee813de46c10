"""The data-parallel fit's replica check (vaefast/training/data_parallel.py,
_state_crc): one CRC over the parameters and both Adam moments, compared
between ranks before the first step and after every epoch. Oracle: zlib's
CRC of the same buffers' bytes, and a change of one element anywhere must
change it."""

import zlib

import numpy as np
import pytest

import vaefast
from vaefast import _core
from vaefast._internals import internals
from vaefast.training.data_parallel import _state_crc

PARAMS, MOMENT1, MOMENT2 = _core.PARAMS, _core.MOMENT1, _core.MOMENT2


@pytest.fixture
def core():
    model = vaefast.VAE(12, hidden=(8,), latent_dim=3, seed=1)
    X = np.random.default_rng(0).random((64, 12), dtype=np.float32)
    model.fit(X, epochs=1, batch_size=16, progress=False)  # moments not zero
    return internals(model).core


def test_the_crc_is_zlibs_over_the_state_bytes(core):
    want = 0
    for which in (PARAMS, MOMENT1, MOMENT2):
        want = zlib.crc32(core.get_buffer(which).tobytes(), want)
    assert _state_crc(core) == want


@pytest.mark.parametrize("which", [PARAMS, MOMENT1, MOMENT2])
def test_one_changed_element_changes_the_crc(core, which):
    before = _state_crc(core)
    buf = core.buffer_array(which)  # the model's own buffer
    i = buf.size // 2
    old = buf[i]
    buf[i] = np.nextafter(old, np.float32(np.inf))  # one ulp
    try:
        assert _state_crc(core) != before
    finally:
        buf[i] = old
    assert _state_crc(core) == before
