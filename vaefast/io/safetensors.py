"""The safetensors container, read and written with NumPy alone.

Layout (https://github.com/huggingface/safetensors, "Format"): an unsigned
little-endian 64-bit header length n, n bytes of UTF-8 JSON, then the raw
tensor bytes. The JSON maps each tensor name to {"dtype", "shape",
"data_offsets": [begin, end]} (offsets relative to the data section) and may
hold "__metadata__", a str -> str map. Tensors are little-endian and
C-ordered; the data section is covered exactly, without holes or overlaps.

Reading validates every one of those rules against the file's real size, so
a truncated or malformed file is a ValueError, never a crash or a huge
allocation; nothing is ever unpickled or executed.
"""

import json
import struct

from typing import Any, Mapping

import numpy as np
from numpy.typing import NDArray

# safetensors dtype codes this reader accepts (vaefast writes F32 only).
DTYPES: dict[str, "np.dtype[Any]"] = {
    "F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4")}
_CODES = {v: k for k, v in DTYPES.items()}
MAX_HEADER = 100 * 2**20  # bytes; the reference implementation's limit
HEADER_ALIGN = 8


def looks_like_safetensors(prefix: bytes) -> bool:
    """True if the first bytes of a file are a safetensors header start."""
    return len(prefix) >= 9 and prefix[8:9] == b"{" and \
        struct.unpack("<Q", prefix[:8])[0] <= MAX_HEADER


def encode(tensors: Mapping[str, NDArray[Any]], metadata: Mapping[str, str]) -> bytes:
    """The bytes of a safetensors file.

    Parameters
    ----------
    tensors : dict of str -> ndarray
        Written in this order (dtype one of DTYPES).
    metadata : dict of str -> str
    """
    header: dict[str, object] = {"__metadata__": dict(metadata)}
    chunks: list[bytes] = []
    offset = 0
    for name, array in tensors.items():
        a = np.ascontiguousarray(array)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        header[name] = {"dtype": _CODES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        chunks.append(a.tobytes())
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % HEADER_ALIGN)  # data section 8-byte aligned
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def decode(blob: bytes, where: str) -> tuple[dict[str, NDArray[Any]], dict[str, str]]:
    """(tensors, metadata) from the bytes of a safetensors file.

    Tensors are read-only views of `blob`, in header order. `where` names the
    file in error messages. ValueError on any violation of the format.
    """
    if len(blob) < 8:
        raise ValueError(f"{where} is truncated: {len(blob)} bytes, no safetensors header")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER or 8 + n > len(blob):
        raise ValueError(f"{where} is truncated or corrupt: the header claims {n} bytes, "
                         f"the file has {len(blob) - 8} after the length")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where} is corrupt: unreadable safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{where} is corrupt: the safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"{where} is corrupt: __metadata__ is not a str -> str map")
    data = memoryview(blob)[8 + n:]
    spans, tensors = [], {}
    for name, info in header.items():
        tensors[name] = _tensor(name, info, data, where)
        spans.append(tuple(info["data_offsets"]))
    end = 0
    for begin, stop in sorted(spans):
        if begin != end:
            raise ValueError(f"{where} is corrupt: tensor data has a hole or an overlap at "
                             f"byte {min(begin, end)}")
        end = stop
    if end != len(data):
        raise ValueError(f"{where} is truncated or corrupt: tensors cover {end} bytes of "
                         f"data, the file holds {len(data)}")
    return tensors, metadata


def _tensor(name: str, info: object, data: "bytes | memoryview",
            where: str) -> NDArray[Any]:
    what = f"{where} is corrupt: tensor {name!r}"
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise ValueError(f"{what} needs exactly dtype, shape and data_offsets")
    dtype = DTYPES.get(info["dtype"])
    if dtype is None:
        raise ValueError(f"{what} has unsupported dtype {info['dtype']!r}")
    shape, offsets = info["shape"], info["data_offsets"]
    if not (isinstance(shape, list) and all(type(s) is int and s >= 0 for s in shape)):
        raise ValueError(f"{what} has an invalid shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2
            and all(type(o) is int for o in offsets) and 0 <= offsets[0] <= offsets[1]):
        raise ValueError(f"{what} has invalid data_offsets {offsets!r}")
    begin, end = offsets
    if end > len(data):
        raise ValueError(f"{where} is truncated: tensor {name!r} ends at data byte {end}, "
                         f"the file holds {len(data)}")
    count = 1
    for s in shape:
        count *= s
    if count * dtype.itemsize != end - begin:
        raise ValueError(f"{what} has shape {shape} ({count * dtype.itemsize} bytes) but "
                         f"spans {end - begin} bytes")
    return np.frombuffer(data[begin:end], dtype=dtype).reshape(shape)
