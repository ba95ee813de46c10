"""Save / load of a VAE (format: docs/model-format.md).

An uncompressed .npz (np.savez) holding only plain arrays — never pickled
objects — read back with ``allow_pickle=False``. A SHA-256 over every other
entry detects truncation and tampering. Files are written atomically: a
temporary file in the target directory, fsync, then os.replace.
"""

import hashlib
import json
import os
import tempfile

import numpy as np

FORMAT_TAG = "vaefast.VAE"
FORMAT_VERSION = 2
# Version 1 (before conditional models and the new likelihoods) has the same
# entries; its config lacks n_conditions and variance, whose defaults (0,
# "unit") give exactly the version-1 model, so it loads as is.
READABLE_VERSIONS = (1, 2)
_ARRAYS = ("params", "moment1", "moment2")
_KEYS = ("format", "version", "config", "state", *_ARRAYS)


def _digest(payload):
    """SHA-256 over the entries in _KEYS order: name, dtype, shape, bytes."""
    h = hashlib.sha256()
    for key in _KEYS:
        a = np.ascontiguousarray(payload[key])
        h.update(key.encode())
        h.update(a.dtype.str.encode())
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def model_payload(model):
    """The arrays of a saved model (with their checksum), in memory."""
    core = model._core
    state = {"step": int(model.step_), "epoch": int(model.epoch_),
             "optimizer": model.optimizer_, "seed": int(model.seed)}
    payload = {
        "format": np.array(FORMAT_TAG),
        "version": np.array(FORMAT_VERSION, dtype=np.int64),
        "config": np.array(json.dumps(model.get_config(), sort_keys=True)),
        "state": np.array(json.dumps(state, sort_keys=True)),
        "params": core.get_buffer(0),
        "moment1": core.get_buffer(2),
        "moment2": core.get_buffer(3),
    }
    payload["sha256"] = np.array(_digest(payload))
    return payload


def save_model(model, path):
    """Write `model` to exactly `path`, atomically."""
    path = os.fspath(path)
    payload = model_payload(model)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
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


def _read_payload(path):
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # every .npz is a zip archive
        raise ValueError(f"{path!s} is not a vaefast model file (not an .npz archive)")
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


def load_model(cls, path):
    """Read a model written by save_model; ValueError on any damage."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path!s}")
    return model_from_payload(cls, _read_payload(path), path)


def model_from_payload(cls, payload, path="pickled VAE"):
    """The model held by `payload` (model_payload's arrays); ValueError on any
    damage, naming `path` (where the payload came from)."""
    if str(payload["format"]) != FORMAT_TAG:
        raise ValueError(f"{path!s} is not a vaefast model file "
                         f"(format tag {str(payload['format'])!r})")
    missing = [k for k in (*_KEYS, "sha256") if k not in payload]
    if missing:
        raise ValueError(f"{path!s} is corrupt: missing entry {missing[0]!r}")
    version = int(payload["version"])
    if version not in READABLE_VERSIONS:
        raise ValueError(f"{path!s} has model format version {version}; this vaefast "
                         f"reads versions {', '.join(map(str, READABLE_VERSIONS))}")
    if str(payload["sha256"]) != _digest(payload):
        raise ValueError(f"{path!s} is corrupt: SHA-256 checksum mismatch")
    try:
        config = json.loads(str(payload["config"]))
        state = json.loads(str(payload["state"]))
        model = cls(**config)
    except Exception as exc:
        raise ValueError(f"{path!s} has an invalid configuration: {exc}") from None
    n = model._core.num_params
    for key in _ARRAYS:
        a = payload[key]
        if a.dtype != np.float32 or a.shape != (n,):
            raise ValueError(f"{path!s} is corrupt: {key} has dtype {a.dtype} and shape "
                             f"{a.shape}, expected float32 ({n},)")
    if not np.isfinite(payload["params"]).all():
        raise ValueError(f"{path!s} is corrupt: non-finite parameters")
    model._core.set_buffer(0, payload["params"])
    model._core.set_buffer(2, payload["moment1"])
    model._core.set_buffer(3, payload["moment2"])
    model.step_ = int(state["step"])
    model.epoch_ = int(state["epoch"])
    model.optimizer_ = state["optimizer"]
    return model


def model_to_bytes(model):
    """The bytes of the file save_model writes (pickling and to_bytes).

    Goes through a private temporary file so that the bytes are exactly the
    saved-model format, whatever its version, with its checksum.
    """
    with tempfile.TemporaryDirectory(prefix="vaefast-") as tmp:
        path = os.path.join(tmp, "model.vae")
        save_model(model, path)
        with open(path, "rb") as f:
            return f.read()


def model_from_bytes(cls, data):
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
