"""NumPy reference layers against naive loops, the safetensors writer, the VGG19 dequantiser and
fetch.py's bookkeeping. No torch, no network."""

import contextlib
import io
import os
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import convert_vgg19  # noqa: E402
import fetch  # noqa: E402
import np_nn  # noqa: E402
import st_numpy  # noqa: E402


def naive_conv(x, w, b, stride, pad):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh = (h + 2 * pad[0] - kh) // stride[0] + 1
    ow = (wd + 2 * pad[1] - kw) // stride[1] + 1
    y = np.zeros((n, o, oh, ow))
    for bi in range(n):
        for oc in range(o):
            for i in range(oh):
                for j in range(ow):
                    s = b[oc]
                    for ci in range(c):
                        for u in range(kh):
                            for v in range(kw):
                                yy, xx = i * stride[0] + u - pad[0], j * stride[1] + v - pad[1]
                                if 0 <= yy < h and 0 <= xx < wd:
                                    s += x[bi, ci, yy, xx] * w[oc, ci, u, v]
                    y[bi, oc, i, j] = s
    return y


def naive_pool(x, k, s, p, op, count_include_pad=True):
    n, c, h, w = x.shape
    oh, ow = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            y0, x0 = i * s[0] - p[0], j * s[1] - p[1]
            win = x[:, :, max(y0, 0):min(y0 + k[0], h), max(x0, 0):min(x0 + k[1], w)]
            if op == "max":
                y[:, :, i, j] = win.max(axis=(2, 3))
            else:
                div = k[0] * k[1] if count_include_pad else win.shape[2] * win.shape[3]
                y[:, :, i, j] = win.sum(axis=(2, 3)) / div
    return y


class NumpyLayersTest(unittest.TestCase):
    def test_conv_and_pools_match_naive_loops(self):
        rng = np.random.default_rng(3)
        x = rng.standard_normal((2, 3, 7, 6))
        w = rng.standard_normal((4, 3, 3, 2))
        b = rng.standard_normal(4)
        for stride, pad in (((1, 1), (1, 0)), ((2, 2), (0, 1)), ((2, 1), (1, 1))):
            np.testing.assert_allclose(np_nn.conv2d(x, w, b, stride, pad), naive_conv(x, w, b, stride, pad),
                                       rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(np_nn.max_pool2d(x, (3, 3), (2, 2)), naive_pool(x, (3, 3), (2, 2), (0, 0), "max"))
        np.testing.assert_array_equal(np_nn.max_pool2d(-abs(x), (3, 3), (1, 1), (1, 1)),
                                      naive_pool(-abs(x), (3, 3), (1, 1), (1, 1), "max"))
        for cip in (True, False):
            np.testing.assert_allclose(np_nn.avg_pool2d(x, (3, 3), (1, 1), (1, 1), cip),
                                       naive_pool(x, (3, 3), (1, 1), (1, 1), "avg", cip), rtol=1e-12)

    def test_legacy_bilinear(self):
        x = np.arange(6, dtype=np.float64).reshape(1, 1, 2, 3)
        y = np_nn.resize_bilinear_legacy(x, 4, 5)
        # source row = dst · 2/4, column = dst · 3/5, upper neighbour clamped.
        for i in range(4):
            for j in range(5):
                sy, sx = i * 0.5, j * 0.6
                y0, x0 = int(sy), int(sx)
                y1, x1 = min(y0 + 1, 1), min(x0 + 1, 2)
                fy, fx = sy - y0, sx - x0
                want = (x[0, 0, y0, x0] * (1 - fx) + x[0, 0, y0, x1] * fx) * (1 - fy) + \
                       (x[0, 0, y1, x0] * (1 - fx) + x[0, 0, y1, x1] * fx) * fy
                self.assertAlmostEqual(y[0, 0, i, j], want, places=12)
        np.testing.assert_array_equal(np_nn.resize_bilinear_legacy(x, 2, 3), x)

    def test_images_are_deterministic_and_in_range(self):
        a, b = np_nn.test_images(), np_nn.test_images()
        self.assertEqual([i.shape for i in a], [(1, 3, 64, 64), (1, 3, 48, 80)])
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
            self.assertTrue(-1 <= x.min() and x.max() <= 1)


class SafetensorsTest(unittest.TestCase):
    def test_round_trip_and_header(self):
        t = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.array([7], dtype=np.uint8),
             "c": np.zeros((0, 2), dtype=np.float32)}
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "x.safetensors")
            st_numpy.save(path, t, {"k": "v"})
            back, meta = st_numpy.load(path)
            self.assertEqual(meta, {"k": "v"})
            for k in t:
                np.testing.assert_array_equal(back[k], t[k])
                self.assertEqual(back[k].dtype, t[k].dtype)
            with open(path, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
            self.assertEqual(n % 8, 0)
            try:
                from safetensors.numpy import load_file
            except ImportError:
                return
            for k, v in load_file(path).items():
                np.testing.assert_array_equal(v, t[k])
        with self.assertRaises(ValueError):
            st_numpy.save(os.path.join(tempfile.gettempdir(), "never.safetensors"), {"x": np.zeros(2, np.bool_)})


class Vgg19ConvertTest(unittest.TestCase):
    def fake_state(self):
        rng = np.random.default_rng(0)
        state = {}
        for src, _, shape in convert_vgg19.conv_names():
            state[f"{src}_W_q"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
            state[f"{src}_W_table"] = rng.standard_normal(256).astype(np.float32)
            state[f"{src}_b"] = rng.standard_normal(shape[0]).astype(np.float32)
        return state

    def test_dequantise_is_a_table_lookup_with_engine_names(self):
        state = self.fake_state()
        w = convert_vgg19.dequantise(state)
        self.assertEqual(len(w), 32)
        q, table = state["block3_conv2_W_q"], state["block3_conv2_W_table"]
        got = w["vgg.conv3_2.weight"]
        self.assertEqual(got.shape, (256, 256, 3, 3))
        self.assertEqual(got[5, 7, 1, 2], table[q[5, 7, 1, 2]])
        np.testing.assert_array_equal(w["vgg.conv5_4.bias"], state["block5_conv4_b"])

    def test_dequantise_rejects_wrong_files(self):
        state = self.fake_state()
        del state["block2_conv1_b"]
        with self.assertRaises(SystemExit) as e:
            convert_vgg19.dequantise(state)
        self.assertIn("block2_conv1_b", str(e.exception))
        state = self.fake_state()
        state["block1_conv1_W_q"] = np.zeros((3, 3, 3, 64), np.uint8)  # HWIO, not OIHW
        with self.assertRaises(SystemExit) as e:
            convert_vgg19.dequantise(state)
        self.assertIn("block1_conv1_W_q", str(e.exception))

    def test_caffe_preprocessing(self):
        x = np.array([-1.0, 0.0, 1.0]).reshape(1, 3, 1, 1)
        y = convert_vgg19.preprocess(x).ravel()
        np.testing.assert_allclose(y, [255 - 103.939, 127.5 - 116.779, 0 - 123.68])


class FetchTest(unittest.TestCase):
    def test_present_outputs_are_skipped_and_missing_converters_reported(self):
        with tempfile.TemporaryDirectory() as d:
            src = fetch.Source("x", "x==1", "x.whl", "0" * 64, "", "convert_nothing_here.py", ("x.safetensors",))
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.assertEqual(fetch.fetch_one(src, d, d, force=False), "skipped")
            self.assertIn("does not exist yet", out.getvalue())
            open(os.path.join(d, "x.safetensors"), "w").close()
            self.assertEqual(fetch.fetch_one(src, d, d, force=False), "present")

    def test_bad_only_and_hashes(self):
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
            fetch.main(["--only", "vgg19,nope"])
        keys = [s.key for s in fetch.SOURCES]
        self.assertEqual(keys, ["vgg19", "inception", "lpips", "openpose"])
        for s in fetch.SOURCES:
            self.assertEqual(len(s.sha256), 64)
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "f")
            with open(p, "wb") as f:
                f.write(b"abc")
            self.assertEqual(fetch.sha256(p), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


if __name__ == "__main__":
    unittest.main()
