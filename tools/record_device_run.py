#!/usr/bin/env python3
"""Writes benches/results/<date>-<card>.md from the files a device run brought back.

After `bash device_run/run.sh all 570` the device tool copies $OUT here (its files_at folder):
run.log (everything run.sh printed), cases.txt, tests.log, cuda_kernels.md, cuda_train_step.md,
sanitizer.log, sanitizer_tests.log and PyTorch's logs and JSON. This collects them into one
dated results file, so a GPU session spends its minutes measuring rather than transcribing:
the build, the card, every test's exit line and the case counts, both benchmark tables (which
already carry PyTorch's same-run ratios) and the sanitizer summary. What the numbers mean
against the targets is for the session to write under it.

Usage: python3 tools/record_device_run.py FETCHED_DIR [--out FILE] [--date YYYY-MM-DD]
"""
import argparse
import datetime
import os
import re
import sys


def read(folder, name):
    """The text of folder/name, or None when the run did not write it."""
    path = os.path.join(folder, name)
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def card_of(run_log):
    """The GPU name from nvidia-smi's line in run.log ("NVIDIA H200, 580.xx, 143771 MiB")."""
    for line in (run_log or "").splitlines():
        m = re.match(r"^(NVIDIA [^,]+), [0-9.]+, [0-9]+ MiB$", line.strip())
        if m:
            return m.group(1)
    return None


def slug(card):
    """"NVIDIA H200" -> "h200"; anything unknown -> "gpu"."""
    if not card:
        return "gpu"
    name = card.replace("NVIDIA", "").strip().split()[0].lower()
    return re.sub(r"[^a-z0-9]+", "-", name) or "gpu"


def demote(text):
    """An embedded report's headings two levels down, under this file's sections."""
    return "\n".join("##" + l if l.startswith("#") else l for l in text.splitlines())


def section(title, body):
    return f"## {title}\n\n{body.rstrip()}\n\n"


def render(folder, date):
    run_log = read(folder, "run.log")
    if run_log is None:
        raise SystemExit(f"{folder}: no run.log (is this the folder a device run brought back?)")
    card = card_of(run_log)
    lines = run_log.splitlines()
    build = next((l for l in lines if l.startswith("build: ")), "build: unknown")
    smi = next((l.strip() for l in lines if card and l.strip().startswith(card)), "nvidia-smi: not recorded")
    out = f"# GPU run on {card or 'an unnamed GPU'}, {date}\n\n"
    out += f"{build}\n\nDevice (nvidia-smi): {smi}\n\n"
    out += "Collected by tools/record_device_run.py from the files of `bash device_run/run.sh all`.\n\n"

    phases = [l for l in lines if l.startswith("=== phase ") or l.startswith("=== all phases")]
    if phases:
        out += section("Phases", "\n".join(f"- {p.strip('= ').strip()}" for p in phases))

    exits = [l for l in lines if re.search(r": (exit -?\d+|NOT RUN)", l) and not l.startswith("---")]
    cases = read(folder, "cases.txt")
    body = ""
    counts = [l for l in lines if l.startswith("cases: ")]
    if counts:
        body += counts[0] + " (case lines of tests.log)\n\n"
    if exits:
        body += "Each test in its own process (exit 0 passes, 124 is a timeout):\n\n```\n" + "\n".join(exits) + "\n```\n"
    fails = [l for l in (cases or "").splitlines() if re.search(r" FAIL( \(.*)?$", l)]
    if fails:
        body += "\nFailing cases:\n\n```\n" + "\n".join(fails[:200]) + "\n```\n"
    if body:
        out += section("Tests on the GPU", body)

    for name, title in (("cuda_kernels.md", "Kernel benchmark"), ("cuda_train_step.md", "Training iteration and inference")):
        text = read(folder, name)
        if text is not None and text.strip():
            out += section(title, demote(text))
        else:
            out += section(title, f"Not run or no output ({name} missing or empty).")

    san = read(folder, "sanitizer.log")
    san_tests = read(folder, "sanitizer_tests.log") or ""
    if san is not None:
        summary = sorted(set(l.strip() for l in san_tests.splitlines() if re.search(r"ERROR SUMMARY|RACECHECK SUMMARY", l)))
        body = "```\n" + san.strip() + "\n```\n"
        if summary:
            body += "\nSummaries:\n\n```\n" + "\n".join(summary) + "\n```\n"
        out += section("compute-sanitizer", body)
    elif any("no compute-sanitizer" in l for l in lines):
        out += section("compute-sanitizer", "No compute-sanitizer on the machine.")
    return out, card


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--out", help="the results file (default benches/results/<date>-<card>.md)")
    ap.add_argument("--date", default=datetime.date.today().isoformat())
    a = ap.parse_args(argv)
    text, card = render(a.folder, a.date)
    path = a.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benches", "results", f"{a.date}-{slug(card)}.md")
    if os.path.exists(path):
        raise SystemExit(f"{path} exists: give --out, or move it first (a results file is never overwritten)")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(os.path.normpath(path))


if __name__ == "__main__":
    sys.exit(main())
