"""The NumPy references against PyTorch on the real downloads. Skipped without torch (CI has none)
or without weights/.cache from `python3 tools/weights/fetch.py`; run by hand where both exist:

    python3 -m unittest discover -s tools/weights/tests -v
"""

import io
import os
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)
import convert_inception  # noqa: E402
import convert_vgg19  # noqa: E402
import np_nn  # noqa: E402
import torch_pickle  # noqa: E402

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None

CACHE = os.path.join(os.path.dirname(os.path.dirname(HERE)), "weights", ".cache")
VGG_BIN = os.path.join(CACHE, "vgg19", "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin")
INCEPTION_PT = os.path.join(CACHE, "inception", "default_1.pt")


@unittest.skipIf(torch is None, "skipped: torch not installed")
class TorchParityTest(unittest.TestCase):
    def test_reader_matches_torch_load_on_both_containers(self):
        t = {"a": torch.arange(10, dtype=torch.float32).reshape(2, 5).t(), "b": torch.tensor([1, 2], dtype=torch.uint8)}
        for zip_format in (False, True):
            buf = io.BytesIO()
            torch.save(t, buf, _use_new_zipfile_serialization=zip_format)
            out = torch_pickle.load_bytes(buf.getvalue())
            for k, v in t.items():
                np.testing.assert_array_equal(out[k], v.numpy())

    @unittest.skipUnless(os.path.isfile(VGG_BIN), "skipped: run python3 tools/weights/fetch.py first")
    def test_vgg19_numpy_forward_matches_torch(self):
        w = convert_vgg19.dequantise(torch_pickle.load(VGG_BIN))
        x = np_nn.test_images()[1]
        ref = convert_vgg19.forward(w, x)
        y = torch.tensor(convert_vgg19.preprocess(x), dtype=torch.float32)
        got = []
        for b, n in enumerate(convert_vgg19.BLOCK_CONVS, start=1):
            if b > 1:
                y = F.max_pool2d(y, 2, 2)
            for i in range(1, (n if b < 5 else 2) + 1):
                y = F.relu(F.conv2d(y, torch.tensor(w[f"vgg.conv{b}_{i}.weight"]),
                                    torch.tensor(w[f"vgg.conv{b}_{i}.bias"]), padding=1))
                if i == 2:
                    got.append(y.numpy())
        for r, g in zip(ref, got):
            self.assertLess(np.abs(r - g).max(), 1e-5 * np.abs(r).max())

    @unittest.skipUnless(os.path.isfile(INCEPTION_PT), "skipped: run python3 tools/weights/fetch.py first")
    def test_inception_numpy_forward_matches_torchscript(self):
        convs = convert_inception.load_model(INCEPTION_PT)
        net = torch.jit.load(INCEPTION_PT).eval()
        x = convert_inception.preprocess(np_nn.test_images()[1])
        ref = convert_inception.Reference(convs).features(x)
        with torch.no_grad():
            got = net(torch.tensor(x, dtype=torch.float32)).numpy()
        self.assertLess(np.abs(ref - got).max(), 1e-4)
        # The folded weights give the same first layer as conv + BN.
        tensors, _ = convert_inception.fold(convs)
        ref1 = convert_inception.Reference(convs).c("conv", x)
        folded = np_nn.relu(np_nn.conv2d(x, tensors["inception.conv.weight"].astype(np.float64),
                                         tensors["inception.conv.bias"], (2, 2)))
        self.assertLess(np.abs(ref1 - folded).max(), 1e-4)


if __name__ == "__main__":
    unittest.main()
