"""Minimal safetensors read/write with NumPy only (CI installs numpy, not the safetensors package).

Format: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}
plus an optional "__metadata__" map of strings, then the tensors' raw little-endian bytes.
"""

import json
import os
import struct

import numpy as np

DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1"}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


def save(path, tensors, metadata=None):
    """Writes {name: array} (sorted by name) atomically: a temp file renamed over `path`."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        if dt not in NAMES:
            raise ValueError(f"{name}: unsupported dtype {arr.dtype}")
        raw = arr.astype(dt, copy=False).tobytes()
        header[name] = {
            "dtype": NAMES[dt],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # keep the data 8-byte aligned
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)


def load(path):
    """Returns ({name: array}, metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        lo, hi = info["data_offsets"]
        arr = np.frombuffer(data[base + lo : base + hi], dtype=DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"]).copy()
    return out, meta
