"""The VAE's file methods (save, load, to_bytes, from_bytes, pickling), a
base class of vaefast.model.VAE; the formats themselves are serialize.py's."""

from typing import TYPE_CHECKING, Any, Callable, TypeVar, cast

from .._internals import internals
from .._typing import StrPath

if TYPE_CHECKING:
    from ..model import VAE

_V = TypeVar("_V", bound="ModelFiles")


class ModelFiles:
    """save / load / to_bytes / from_bytes / pickle of a VAE (docs/model-format.md)."""

    def save(self, path: StrPath, format: str = "npz") -> None:
        """Write the model (config, weights, optimizer state, counters).

        Parameters
        ----------
        path : str or os.PathLike
            The file written: exactly this name (no suffix added). It is
            written to a temporary file beside it and renamed, so an existing
            model is replaced atomically.
        format : {"npz", "safetensors"}
            ``"npz"`` (default): vaefast's own .npz-based format;
            ``"safetensors"``: the weights under their :meth:`get_weights`
            names, the configuration and counters in the metadata (readable
            by any safetensors reader). Both: docs/model-format.md.
        """
        from .serialize import save_model

        model = cast("VAE", self)  # the one class this is a base of
        with internals(model).exclusive("save"):
            save_model(model, path, format)

    @classmethod
    def load(cls: type[_V], path: StrPath) -> _V:
        """Read a model written by :meth:`save` (no code is ever executed).

        The format (npz or safetensors) is detected from the file's first
        bytes, not its name.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        VAE
            With its weights, optimizer state and step/epoch counters, so
            that fit continues exactly where the saved model stopped.

        Raises
        ------
        ValueError
            If the file is corrupt, truncated, tampered with or not a vaefast
            model.
        """
        from .serialize import load_model

        return cast(_V, load_model(cast("type[VAE]", cls), path))

    def to_bytes(self) -> bytes:
        """The model as bytes: exactly the file :meth:`save` writes.

        Returns
        -------
        bytes
            Config, weights, optimizer state and counters (pickling uses
            these bytes, so a copy continues training bit-identically).
        """
        from .serialize import model_to_bytes

        model = cast("VAE", self)
        with internals(model).exclusive("to_bytes"):
            return model_to_bytes(model)

    @classmethod
    def from_bytes(cls: type[_V], data: "bytes | bytearray | memoryview") -> _V:
        """The model :meth:`to_bytes` returned `data` for.

        Raises
        ------
        TypeError
            If data is not bytes.
        ValueError
            If the bytes are corrupt, truncated or not a vaefast model.
        """
        from .serialize import model_from_bytes

        return cast(_V, model_from_bytes(cast("type[VAE]", cls), data))

    def __reduce__(self) -> tuple[Callable[[bytes], Any], tuple[bytes]]:
        # pickle / copy / cloudpickle: the saved-model bytes, never C pointers.
        return (type(self).from_bytes, (self.to_bytes(),))
