"""torch_pickle on tiny generated files (no torch needed): a legacy stream and a zip archive with
a TorchScript-style module object, both written here with stand-in `torch` modules."""

import io
import os
import pickle
import struct
import sys
import types
import unittest
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch_pickle  # noqa: E402


class FakeTorch:
    """Installs stand-in `torch`, `torch._utils` and `__torch__.tiny` modules while active, so that
    pickle writes the same GLOBAL opcodes torch.save does."""

    def __enter__(self):
        self.saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils", "__torch__", "__torch__.tiny")}
        torch = types.ModuleType("torch")
        utils = types.ModuleType("torch._utils")
        tiny = types.ModuleType("__torch__.tiny")

        def _rebuild_tensor_v2(*args):
            raise AssertionError("only pickled, never called")

        _rebuild_tensor_v2.__module__ = "torch._utils"
        _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
        utils._rebuild_tensor_v2 = _rebuild_tensor_v2

        class FloatStorage:
            pass

        class ByteStorage:
            pass

        for cls in (FloatStorage, ByteStorage):
            cls.__module__, cls.__qualname__ = "torch", cls.__name__
            setattr(torch, cls.__name__, cls)

        class Tiny:
            pass

        Tiny.__module__, Tiny.__qualname__ = "__torch__.tiny", "Tiny"
        tiny.Tiny = Tiny
        torch._utils = utils
        sys.modules.update({"torch": torch, "torch._utils": utils, "__torch__": types.ModuleType("__torch__"),
                            "__torch__.tiny": tiny})
        self.torch, self.utils, self.Tiny = torch, utils, Tiny
        return self

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class TensorRef:
    """Pickles as torch does: _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""

    def __init__(self, fake, key, kind, numel, offset, size, stride):
        self.fake, self.args = fake, (key, kind, numel, offset, size, stride)

    def __reduce__(self):
        key, kind, numel, offset, size, stride = self.args
        storage = StorageRef(key, getattr(self.fake.torch, kind), numel)
        import collections
        return (self.fake.utils._rebuild_tensor_v2, (storage, offset, size, stride, False, collections.OrderedDict()))


class StorageRef:
    def __init__(self, key, cls, numel):
        self.key, self.cls, self.numel = key, cls, numel


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, StorageRef):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


def dumps(obj):
    buf = io.BytesIO()
    TorchPickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


class TorchPickleTest(unittest.TestCase):
    def test_legacy_stream_with_views_and_shared_storage(self):
        data = np.arange(12, dtype=np.float32) * 0.5
        codes = np.array([3, 1, 2], dtype=np.uint8)
        with FakeTorch() as fake:
            state = {
                "w": TensorRef(fake, "7", "FloatStorage", 12, 0, (3, 4), (4, 1)),
                "wt": TensorRef(fake, "7", "FloatStorage", 12, 1, (2, 3), (1, 4)),  # strided view
                "q": TensorRef(fake, "9", "ByteStorage", 3, 0, (3,), (1,)),
            }
            body = dumps(state)
        stream = io.BytesIO()
        for head in (torch_pickle.LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(head, stream, protocol=2)
        stream.write(body)
        pickle.dump(["7", "9"], stream, protocol=2)
        for arr in (data, codes):
            stream.write(struct.pack("<q", arr.size))
            stream.write(arr.tobytes())
        out = torch_pickle.load_bytes(stream.getvalue())
        np.testing.assert_array_equal(out["w"], data.reshape(3, 4))
        want = np.lib.stride_tricks.as_strided(data[1:], (2, 3), (4, 16))
        np.testing.assert_array_equal(out["wt"], want)
        np.testing.assert_array_equal(out["q"], codes)
        self.assertEqual(out["q"].dtype, np.uint8)

    def test_zip_archive_with_module_objects(self):
        bias = np.array([1.5, -2.0], dtype=np.float32)
        with FakeTorch() as fake:
            mod = fake.Tiny()
            mod.__dict__.update({"training": False, "bias": TensorRef(fake, "0", "FloatStorage", 2, 0, (2,), (1,)),
                                 "stride": 2})
            body = dumps({"net": mod})
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("archive/data.pkl", body)
            zf.writestr("archive/data/0", bias.tobytes())
            zf.writestr("archive/version", "3\n")
        out = torch_pickle.load_bytes(buf.getvalue())
        net = out["net"]
        self.assertIsInstance(net, torch_pickle.Obj)
        self.assertEqual(net.cls, "__torch__.tiny.Tiny")
        self.assertEqual(net.stride, 2)
        np.testing.assert_array_equal(net.bias, bias)
        self.assertEqual(list(torch_pickle.tensors(out)), ["net.bias"])

    def test_rejects_other_files(self):
        with self.assertRaises(Exception):
            torch_pickle.load_bytes(pickle.dumps(123))
        with self.assertRaises(ValueError):
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as zf:
                zf.writestr("x.txt", "no pickle")
            torch_pickle.load_bytes(buf.getvalue())


if __name__ == "__main__":
    unittest.main()
