"""The small internal interface of a VAE for the code that drives it from
outside: the training loop and its sources (memory, streams, MPI shards) and
serialisation. They use this and the model's public methods, never the
model's private attributes, so the model can change inside without them.

This module and vaefast/model.py are the only ones that touch a VAE's
private attributes (tests/test_structure.py checks it). It imports nothing
of the model: it works on any object the model passes.
"""

from ._core import GRADS, MOMENT1, MOMENT2, PARAMS  # noqa: F401  (the buffers)
from ._validation import as_float32_array, as_weight


class Internals:
    """What training, streaming, MPI and serialisation may use of `model`."""

    __slots__ = ("model",)

    def __init__(self, model):
        self.model = model

    @property
    def core(self):
        """The binding's VAECore: the training steps and the flat buffers."""
        return self.model._core

    def check_X(self, X, name="X"):
        """Training rows: 2-D float32, n_features columns, valid targets."""
        return self.model._check_X(X, name, targets=True)

    def check_rows(self, rows):
        """A sparse or backed input (vaefast/_rows.py Rows): n_features
        columns, at least one row, valid stored values (an in-memory matrix
        is checked whole now, a backed one a batch at a time when read)."""
        n_features = self.model.n_features
        if rows.shape[1] != n_features:
            raise ValueError(f"{rows.name} must have {n_features} columns (n_features), "
                             f"got {rows.shape[1]}")
        if rows.shape[0] == 0:
            raise ValueError(f"{rows.name} must not be empty, got shape {rows.shape}")
        return rows.check(self._check_values, self.model._lik.check_row_totals)

    def _check_values(self, values, name):
        values = as_float32_array(values, name, allow_empty=True)
        return self.model._lik.check_targets(values, name)

    def check_side(self, c, size_factors, n):
        """The conditions and size factors of n rows (None where absent)."""
        return self.model._check_c(c, n), self.model._check_size_factors(size_factors, n)

    def exclusive(self, what):
        """Context: the model's training lock, or RuntimeError naming `what`."""
        return self.model._exclusive(what)

    def get_buffer(self, which):
        return self.core.get_buffer(which)

    def set_buffer(self, which, flat):
        self.core.set_buffer(which, flat)

    @property
    def num_params(self):
        return int(self.core.num_params)

    def shapes(self):
        """get_weights() key -> shape."""
        return self.model._layout.shapes()

    def named(self, flat):
        """A flat buffer as a dict keyed like get_weights()."""
        return self.model._layout.named_from_flat(flat)

    def flat(self, named):
        """A dict keyed like get_weights() (checked) as a flat buffer."""
        return self.model._layout.flat_from_named(named, as_weight)


def internals(model):
    """The internal interface of `model`."""
    return Internals(model)
