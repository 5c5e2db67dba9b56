"""tools/record_device_run.py on a made-up folder of the files a device run brings back."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import record_device_run as rec  # noqa: E402

RUN_LOG = """build: abc1234, built 2026-11-27T10:00:00Z; phase: all
NVIDIA H200, 580.82.07, 143771 MiB

=== phase tests: until 270 s of 570 (now 0 s) ===
cuda_tensor host_device_round_trip_is_exact: exit 0 (1 s; 124 = timed out)
cuda_vs_cpu conv2d_matches_cpu: exit 101 (9 s; 124 = timed out)
cuda_pipeline train_resume_and_transfer_run_on_the_gpu: NOT RUN (time spent)
model_parity on cuda: exit 0 (124 = timed out)
cases: 341 PASS, 1 FAIL

=== phase perf: until 380 s of 570 (now 120 s) ===
=== all phases done in 402 s ===
"""


class RecordTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        d = self.dir.name
        files = {
            "run.log": RUN_LOG,
            "cases.txt": "conv2d c3_dx 1e-3 2e-5 FAIL (share 50.0)\nconv2d c3_y 1e-7 1e-7 PASS\n",
            "cuda_kernels.md": "## CUDA kernel benchmark\n\n| case | ms |\n|---|---|\n| matmul 8192³ f32 | 25.000 |\n",
            "sanitizer.log": "--- memcheck (up to 80 s)\ncuda_backend layout_ops_match_cpu: exit 0 (40 s; 124 = timed out)\n",
            "sanitizer_tests.log": "========= ERROR SUMMARY: 0 errors\n========= ERROR SUMMARY: 0 errors\n",
        }
        for name, text in files.items():
            with open(os.path.join(d, name), "w") as fh:
                fh.write(text)

    def tearDown(self):
        self.dir.cleanup()

    def test_collects_every_part_and_names_the_card(self):
        text, card = rec.render(self.dir.name, "2026-11-27")
        self.assertEqual(card, "NVIDIA H200")
        self.assertEqual(rec.slug(card), "h200")
        self.assertTrue(text.startswith("# GPU run on NVIDIA H200, 2026-11-27"))
        self.assertIn("build: abc1234", text)
        self.assertIn("Device (nvidia-smi): NVIDIA H200, 580.82.07, 143771 MiB", text)
        self.assertIn("cases: 341 PASS, 1 FAIL", text)
        self.assertIn("cuda_vs_cpu conv2d_matches_cpu: exit 101", text)
        self.assertIn("train_resume_and_transfer_run_on_the_gpu: NOT RUN", text)
        self.assertIn("conv2d c3_dx 1e-3 2e-5 FAIL (share 50.0)", text)
        self.assertNotIn("c3_y", text)
        self.assertIn("| matmul 8192³ f32 | 25.000 |", text)
        self.assertIn("\n#### CUDA kernel benchmark\n", text)
        self.assertIn("Not run or no output (cuda_train_step.md missing or empty)", text)
        self.assertIn("ERROR SUMMARY: 0 errors", text)
        self.assertIn("all phases done in 402 s", text)

    def test_writes_once_and_never_overwrites(self):
        out = os.path.join(self.dir.name, "result.md")
        rec.main([self.dir.name, "--out", out, "--date", "2026-11-27"])
        with open(out) as fh:
            self.assertIn("## Kernel benchmark", fh.read())
        with self.assertRaises(SystemExit):
            rec.main([self.dir.name, "--out", out])

    def test_a_folder_without_run_log_is_refused(self):
        os.remove(os.path.join(self.dir.name, "run.log"))
        with self.assertRaises(SystemExit) as e:
            rec.render(self.dir.name, "2026-11-27")
        self.assertIn("no run.log", str(e.exception))


if __name__ == "__main__":
    unittest.main()
