"""Save / load of a VAE (formats: docs/model-format.md).

Two containers, told apart on load by the file's first bytes (never its
name):

* "npz" (the default): an uncompressed .npz (np.savez) holding only plain
  arrays — never pickled objects — read back with ``allow_pickle=False``;
* "safetensors": the weights under their get_weights() names, the config
  and counters in the header's metadata (see safetensors.py).

In both a SHA-256 over everything else detects truncation and tampering.
Files are written atomically: a temporary file in the target directory,
fsync, then os.replace.
"""

import hashlib
import json
import os
import tempfile

from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional, TypeVar

import numpy as np
from numpy.typing import NDArray

from .. import _hidden_options
from .._internals import MOMENT1, MOMENT2, PARAMS, internals
from .._typing import F32, StrPath
from .._version import __version__
from . import safetensors as _safetensors

if TYPE_CHECKING:
    from ..model import VAE

_V = TypeVar("_V", bound="VAE")

FORMATS = ("npz", "safetensors")
FORMAT_TAG = "vaefast.VAE"
FORMAT_VERSION = 2
# Version 1 (before conditional models and the new likelihoods) has the same
# entries; its config lacks n_conditions and variance, whose defaults (0,
# "unit") give exactly the version-1 model, so it loads as is.
READABLE_VERSIONS = (1, 2)
_ARRAYS = ("params", "moment1", "moment2")
_KEYS = ("format", "version", "config", "state", *_ARRAYS)
# Informational, outside the checksum (so readers that predate it still
# verify the file) and not required on load: which vaefast wrote the file.
WRITER_KEY = "writer"


def _digest(payload: Mapping[str, NDArray[Any]]) -> str:
    """SHA-256 over the .npz entries in _KEYS order."""
    return _hash_entries((k, payload[k]) for k in _KEYS)


def _hash_entries(entries: Iterable[tuple[str, NDArray[Any]]]) -> str:
    """SHA-256 over (name, array) pairs in order: name, dtype, shape, bytes."""
    h = hashlib.sha256()
    for key, a in entries:
        a = np.ascontiguousarray(a)
        h.update(key.encode())
        h.update(a.dtype.str.encode())
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _state_json(model: "VAE") -> str:
    state: dict[str, object] = {"step": int(model.step_), "epoch": int(model.epoch_),
                                "optimizer": model.optimizer_, "seed": int(model.seed)}
    if getattr(model, "anndata_setup_", None) is not None:  # VAE.from_anndata's keys
        state["anndata_setup"] = model.anndata_setup_
    state.update(_hidden_options.state_entries(model))  # batch norm's running statistics
    return json.dumps(state, sort_keys=True)


def save_model(model: "VAE", path: StrPath, format: str = "npz") -> None:
    """Write `model` to exactly `path`, atomically, in `format` (FORMATS)."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    path = os.fspath(path)
    if format == "safetensors":
        blob = _safetensors_bytes(model)
        _write_atomically(path, lambda f: f.write(blob))
        return
    inner = internals(model)
    payload = {
        "format": np.array(FORMAT_TAG),
        "version": np.array(FORMAT_VERSION, dtype=np.int64),
        "config": np.array(json.dumps(model.get_config(), sort_keys=True)),
        "state": np.array(_state_json(model)),
        "params": inner.get_buffer(PARAMS),
        "moment1": inner.get_buffer(MOMENT1),
        "moment2": inner.get_buffer(MOMENT2),
    }
    payload["sha256"] = np.array(_digest(payload))
    payload[WRITER_KEY] = np.array(_writer())
    # (NumPy's stub matches **payload against savez's allow_pickle= keyword)
    _write_atomically(path, lambda f: np.savez(f, **payload))  # type: ignore[arg-type]


def _writer() -> str:
    return f"vaefast {__version__}"


def saved_by(path: StrPath) -> Optional[str]:
    """The ``writer`` entry of a saved model (e.g. ``"vaefast 0.2.0"``), or
    None for a file written before vaefast recorded it."""
    with open(path, "rb") as f:
        prefix = f.read(16)
    if prefix[:4] == b"PK\x03\x04":
        with np.load(path, allow_pickle=False) as npz:
            return str(npz[WRITER_KEY]) if WRITER_KEY in npz.files else None
    with open(path, "rb") as f:
        _, metadata = _safetensors.decode(f.read(), str(path))
    return metadata.get(WRITER_KEY)


def _write_atomically(path: StrPath, write: Callable[[IO[bytes]], object]) -> None:
    """write(f) into a temporary file beside `path`, fsync, rename over `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _read_payload(path: StrPath) -> dict[str, NDArray[Any]]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            if "format" not in names:
                raise _Foreign()
            payload = {k: npz[k] for k in names}
    except _Foreign:
        raise ValueError(f"{path!s} is not a vaefast model file (no format tag)") from None
    except Exception as exc:  # np.load / zipfile raise assorted errors on damage
        raise ValueError(f"{path!s} is corrupt or truncated: {type(exc).__name__}: "
                         f"{exc}") from None
    return payload


class _Foreign(Exception):
    pass


def load_model(cls: type[_V], path: StrPath) -> _V:
    """Read a model written by save_model in either format (detected from
    the file's first bytes); ValueError on any damage."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path!s}")
    with open(path, "rb") as f:
        prefix = f.read(16)
    if prefix[:4] == b"PK\x03\x04":  # every .npz is a zip archive
        return _load_npz(cls, path)
    if _safetensors.looks_like_safetensors(prefix):
        return _load_safetensors(cls, path)
    raise ValueError(f"{path!s} is not a vaefast model file (neither an .npz archive nor "
                     "safetensors)")


def _check_version(path: StrPath, version: int) -> None:
    if version not in READABLE_VERSIONS:
        raise ValueError(f"{path!s} has model format version {version}; this vaefast "
                         f"reads versions {', '.join(map(str, READABLE_VERSIONS))}")


def _load_npz(cls: type[_V], path: StrPath) -> _V:
    payload = _read_payload(path)
    if str(payload["format"]) != FORMAT_TAG:
        raise ValueError(f"{path!s} is not a vaefast model file "
                         f"(format tag {str(payload['format'])!r})")
    missing = [k for k in (*_KEYS, "sha256") if k not in payload]
    if missing:
        raise ValueError(f"{path!s} is corrupt: missing entry {missing[0]!r}")
    _check_version(path, int(payload["version"]))
    if str(payload["sha256"]) != _digest(payload):
        raise ValueError(f"{path!s} is corrupt: SHA-256 checksum mismatch")
    model, state = _new_model(cls, path, str(payload["config"]), str(payload["state"]))
    _restore(model, path, state, *(payload[k] for k in _ARRAYS))
    return model


def _new_model(cls: type[_V], path: StrPath, config_json: str,
               state_json: str) -> tuple[_V, dict[str, Any]]:
    """(model with a fresh core, state dict) from the stored JSON."""
    try:
        config = json.loads(config_json)
        state = json.loads(state_json)
        return cls(**config), state
    except Exception as exc:
        raise ValueError(f"{path!s} has an invalid configuration: {exc}") from None


def _restore(model: "VAE", path: StrPath, state: Mapping[str, Any], params: F32, moment1: F32,
             moment2: F32) -> None:
    """Check the three flat buffers and put them and the counters in `model`."""
    inner = internals(model)
    n = inner.num_params
    for key, a in zip(_ARRAYS, (params, moment1, moment2)):
        if a.dtype != np.float32 or a.shape != (n,):
            raise ValueError(f"{path!s} is corrupt: {key} has dtype {a.dtype} and shape "
                             f"{a.shape}, expected float32 ({n},)")
    if not np.isfinite(params).all():
        raise ValueError(f"{path!s} is corrupt: non-finite parameters")
    for which, a in zip((PARAMS, MOMENT1, MOMENT2), (params, moment1, moment2)):
        inner.set_buffer(which, np.ascontiguousarray(a))
    model.step_ = int(state["step"])
    model.epoch_ = int(state["epoch"])
    model.optimizer_ = state["optimizer"]
    _hidden_options.restore_state(model, state, path)
    setup = state.get("anndata_setup")  # absent from files of models not from_anndata
    if setup is not None:
        from .._anndata_setup import check_stored

        model.anndata_setup_ = check_stored(setup, model.n_conditions, path,
                                            model.categorical_covariates,
                                            model.get_config().get("n_labels"))


def model_to_bytes(model: "VAE") -> bytes:
    """The bytes of the file save_model writes (pickling and to_bytes).

    Goes through a private temporary file so that the bytes are exactly the
    saved-model format, whatever its version, with its checksum.
    """
    with tempfile.TemporaryDirectory(prefix="vaefast-") as tmp:
        path = os.path.join(tmp, "model.vae")
        save_model(model, path)
        with open(path, "rb") as f:
            return f.read()


def model_from_bytes(cls: type[_V], data: "bytes | bytearray | memoryview") -> _V:
    """The model whose saved file is `data` (bytes); ValueError on damage."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    with tempfile.TemporaryDirectory(prefix="vaefast-") as tmp:
        path = os.path.join(tmp, "model.vae")
        with open(path, "wb") as f:
            f.write(data)
        try:
            return load_model(cls, path)
        except ValueError as exc:
            raise ValueError(str(exc).replace(path, "data")) from None


# ------------------------------------------------------------ safetensors
# Tensor names: get_weights() keys; with an optimizer state, also
# MOMENT_PREFIXES[i] + key for the optimizer's two moment buffers.
MOMENT_PREFIXES = ("optimizer.moment1.", "optimizer.moment2.")
_META_KEYS = ("format", "version", "config", "state")


def _safetensors_digest(metadata: Mapping[str, str], tensors: Mapping[str, NDArray[Any]]) -> str:
    """Over the metadata entries, then the tensors in name order (other
    writers, e.g. the safetensors package, may store them in another order)."""
    return _hash_entries([(k, np.array(metadata[k])) for k in _META_KEYS]
                         + sorted(tensors.items()))


def _safetensors_bytes(model: "VAE") -> bytes:
    inner = internals(model)
    tensors = inner.named(inner.get_buffer(PARAMS))
    if model.optimizer_ is not None:
        for prefix, which in zip(MOMENT_PREFIXES, (MOMENT1, MOMENT2)):
            tensors.update((prefix + k, v) for k, v in inner.named(inner.get_buffer(which)).items())
    metadata = {"format": FORMAT_TAG, "version": str(FORMAT_VERSION),
                "config": json.dumps(model.get_config(), sort_keys=True),
                "state": _state_json(model)}
    metadata["sha256"] = _safetensors_digest(metadata, tensors)
    metadata[WRITER_KEY] = _writer()
    return _safetensors.encode(tensors, metadata)


def _load_safetensors(cls: type[_V], path: StrPath) -> _V:
    with open(path, "rb") as f:
        blob = f.read()
    tensors, metadata = _safetensors.decode(blob, str(path))
    if metadata.get("format") != FORMAT_TAG:
        raise ValueError(f"{path!s} is a safetensors file but not a vaefast model (no "
                         f"format tag {FORMAT_TAG!r} in its metadata); weights of other "
                         "models can be read with vaefast.interop.from_torch("
                         "safetensors.numpy.load_file(path))")
    missing = [k for k in (*_META_KEYS, "sha256") if k not in metadata]
    if missing:
        raise ValueError(f"{path!s} is corrupt: missing metadata {missing[0]!r}")
    if not metadata["version"].isdigit():
        raise ValueError(f"{path!s} is corrupt: version {metadata['version']!r}")
    _check_version(path, int(metadata["version"]))
    if metadata["sha256"] != _safetensors_digest(metadata, tensors):
        raise ValueError(f"{path!s} is corrupt: SHA-256 checksum mismatch")
    model, state = _new_model(cls, path, metadata["config"], metadata["state"])
    inner = internals(model)
    names = set(inner.shapes())
    groups = [{k: tensors.pop(k) for k in names if k in tensors}]
    if state.get("optimizer") is not None:
        groups += [{k: tensors.pop(p + k) for k in names if p + k in tensors}
                   for p in MOMENT_PREFIXES]
    if tensors:
        raise ValueError(f"{path!s} is corrupt: unexpected tensor {next(iter(tensors))!r}")
    try:
        flats = [inner.flat(g) for g in groups]
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{path!s} is corrupt: {exc}") from None
    zeros = np.zeros(inner.num_params, np.float32)
    _restore(model, path, state, flats[0], *(flats[1:] or (zeros, zeros)))
    return model
