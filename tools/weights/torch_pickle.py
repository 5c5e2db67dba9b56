"""Read PyTorch checkpoints without importing torch: NumPy arrays out.

Two containers are understood:

- the legacy `torch.save(..., _use_new_zipfile_serialization=False)` stream: a magic-number pickle,
  a protocol pickle, a sys-info pickle, the object pickle (tensors refer to storages through
  persistent ids), a pickled list of storage keys, then per key an 8-byte element count and the
  raw little-endian bytes;
- zip archives (`torch.save` since 1.6 and TorchScript `torch.jit.save`): `<root>/data.pkl` is the
  object pickle and `<root>/data/<key>` holds each storage's bytes.

Objects of classes this reader does not know (TorchScript modules `__torch__.*`, for instance) are
rebuilt as `Obj` instances holding their pickled state in `.state` (a dict for modules), so a
module tree can be walked by attribute name. Tensors become NumPy arrays (copies, contiguous).
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# torch storage class name -> NumPy dtype (little-endian).
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # raw bits; widened in _bf16_to_f32
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class Obj:
    """A stand-in for an object of an unknown class: keeps its class path and pickled state."""

    def __init__(self, module, name, args=()):
        self.cls = f"{module}.{name}"
        self.args = args
        self.state = None

    def __setstate__(self, state):
        self.state = state

    def __getattr__(self, key):
        # Only reached for attributes not set in __init__: look them up in a dict state.
        state = self.__dict__.get("state")
        if isinstance(state, dict) and key in state:
            return state[key]
        raise AttributeError(f"{self.__dict__.get('cls', '?')} has no attribute {key!r}")

    def __repr__(self):
        return f"Obj({self.cls})"


def _stub_class(module, name):
    """A class whose instances are `Obj`s remembering `module.name` (works with NEWOBJ/REDUCE)."""

    def new(cls, *args):
        return Obj(module, name, args)

    return type(name, (), {"__new__": new})


class _Storage:
    """A storage: a flat NumPy array of one dtype, filled when its bytes are read."""

    def __init__(self, dtype, numel):
        self.dtype = dtype
        self.numel = numel
        self.array = None


def _bf16_to_f32(raw):
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _rebuild_tensor(storage, offset, size, stride, *_rest):
    if storage.array is None:
        raise ValueError("tensor refers to a storage whose bytes were not read")
    flat = storage.array
    if storage.dtype == STORAGE_DTYPES["BFloat16Storage"]:
        flat = _bf16_to_f32(flat)
    size = tuple(int(s) for s in size)
    if not size:
        return flat[offset].copy()
    itemsize = flat.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat[offset:],
        shape=size,
        strides=tuple(int(s) * itemsize for s in stride),
        writeable=False,
    )
    return np.ascontiguousarray(view)


def _identity(value, *_rest):
    return value


def _rebuild_parameter(data, *_rest):
    return data


class _Unpickler(pickle.Unpickler):
    """Resolves torch globals to NumPy rebuilders and everything unknown to `Obj` stubs."""

    def __init__(self, fp, storages, deferred=None):
        super().__init__(fp)
        self.storages = storages  # key -> _Storage, shared with the caller
        # Legacy files: storage bytes come after the object pickle, so tensors are rebuilt later.
        self.deferred = deferred

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor if self.deferred is None else self._defer
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        if module == "torch.jit._pickle" and name.startswith("build_"):
            # TorchScript wraps typed lists (`build_intlist([0, 3])`): keep the plain list.
            return _identity
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "builtins" and name in ("set", "frozenset", "slice", "complex"):
            return getattr(__import__("builtins"), name)
        return _stub_class(module, name)

    def _defer(self, storage, offset, size, stride, *_rest):
        slot = _Deferred(storage, offset, size, stride)
        self.deferred.append(slot)
        return slot

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        dtype, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError(f"unsupported storage type {dtype!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(dtype, numel)
        return self.storages[key]


def _load_legacy(data):
    """The legacy stream; tensors are rebuilt lazily after the storage bytes are read."""
    fp = io.BytesIO(data)
    magic = pickle.load(fp)
    if magic != LEGACY_MAGIC:
        raise ValueError("not a legacy torch file (bad magic number)")
    protocol = pickle.load(fp)
    if protocol != 1001:
        raise ValueError(f"unsupported legacy protocol {protocol}")
    pickle.load(fp)  # sys info: endianness and type sizes
    storages = {}
    obj = _Unpickler(fp, storages, deferred=[]).load()
    keys = pickle.load(fp)
    for key in keys:
        st = storages.get(str(key))
        (numel,) = struct.unpack("<q", fp.read(8))
        if st is None:
            raise ValueError(f"storage {key} listed but never referenced")
        nbytes = numel * st.dtype.itemsize
        raw = fp.read(nbytes)
        if len(raw) != nbytes:
            raise ValueError(f"storage {key}: file truncated")
        st.array = np.frombuffer(raw, dtype=st.dtype)
    return _resolve(obj)


class _Deferred:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride)


def _resolve(obj, seen=None):
    """Replaces `_Deferred` slots by arrays throughout containers and `Obj` states."""
    if seen is None:
        seen = set()
    if isinstance(obj, _Deferred):
        return _rebuild_tensor(*obj.args)
    if id(obj) in seen:
        return obj
    if isinstance(obj, dict):
        seen.add(id(obj))
        for k in list(obj.keys()):
            obj[k] = _resolve(obj[k], seen)
        return obj
    if isinstance(obj, list):
        seen.add(id(obj))
        for i, v in enumerate(obj):
            obj[i] = _resolve(v, seen)
        return obj
    if isinstance(obj, tuple):
        return tuple(_resolve(v, seen) for v in obj)
    if isinstance(obj, Obj):
        seen.add(id(obj))
        obj.state = _resolve(obj.state, seen)
        return obj
    return obj


def _load_zip(path_or_bytes):
    zf = zipfile.ZipFile(path_or_bytes if isinstance(path_or_bytes, str) else io.BytesIO(path_or_bytes))
    names = zf.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
        raise ValueError(f"zip archive without a single data.pkl ({len(pkl)} found)")
    root = pkl[0][: -len("data.pkl")]
    storages = {}

    class ZipUnpickler(_Unpickler):
        def persistent_load(self, pid):
            st = super().persistent_load(pid)
            if st.array is None:
                raw = zf.read(f"{root}data/{pid[2]}")
                need = st.numel * st.dtype.itemsize
                if len(raw) < need:
                    raise ValueError(f"storage {pid[2]}: {len(raw)} bytes, expected {need}")
                st.array = np.frombuffer(raw[:need], dtype=st.dtype)
            return st

    return ZipUnpickler(io.BytesIO(zf.read(pkl[0])), storages).load()


def load(path):
    """Reads a torch checkpoint (legacy or zip, TorchScript included) into NumPy-backed objects."""
    with open(path, "rb") as f:
        return load_bytes(f.read())


def load_bytes(data):
    """As `load`, from the file's bytes."""
    if data[:4] == b"PK\x03\x04":
        return _load_zip(data)
    return _load_legacy(data)


def tensors(obj, prefix=""):
    """Flattens an object tree into {dotted.name: array}: dict keys and `Obj` attributes."""
    out = {}
    if isinstance(obj, np.ndarray):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(tensors(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, Obj) and isinstance(obj.state, dict):
        out.update(tensors(obj.state, prefix))
    return out
