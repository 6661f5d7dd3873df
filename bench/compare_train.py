#!/usr/bin/env python3
"""Times `train` and the scikit-learn reference end to end, alternately, in one run.

Each run is a fresh process doing the whole job (start, read the archive, fit, evaluate, write the
model); wall time and peak RSS come from the OS (wait4). Alternating the two evens out noise from
other load on the machine; the ratio of medians is the figure to quote.

    python3 bench/compare_train.py ARCHIVE --train target/release/train [--runs 5]
"""
import argparse, os, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))


def timed(cmd):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err}")
    return wall, usage.ru_maxrss * 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archive")
    ap.add_argument("--train", default="target/release/train")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    out = tempfile.mkdtemp(prefix="compare-train-")
    ours = [a.train, "--quiet", "--archive", a.archive, "--model", os.path.join(out, "model.bin")]
    ref = [a.python, os.path.join(HERE, "sklearn_reference.py"), a.archive, "--seeds", "42",
           "--model", os.path.join(out, "model.pkl")]
    timed(ours), timed(ref)  # warm the page cache and the Python bytecode cache
    runs = {"train (Rust)": [], "scikit-learn reference": []}
    for _ in range(a.runs):
        runs["train (Rust)"].append(timed(ours))
        runs["scikit-learn reference"].append(timed(ref))
    print(f"{'':24} {'median wall s':>14} {'min':>7} {'max':>7} {'peak RSS MiB':>13}")
    med = {}
    for name, rs in runs.items():
        walls = [w for w, _ in rs]
        med[name] = statistics.median(walls)
        print(f"{name:24} {med[name]:14.3f} {min(walls):7.3f} {max(walls):7.3f} {max(r for _, r in rs) / 2**20:13.0f}")
    ratio = med["train (Rust)"] / med["scikit-learn reference"]
    print(f"ratio train / reference (median wall time): {ratio:.3f}  (target: <= 0.5)")


if __name__ == "__main__":
    main()
