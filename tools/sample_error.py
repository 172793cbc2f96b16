#!/usr/bin/env python3
"""Error of the traffic sample against full simulation, from a sweep over run.traffic_sample.

Usage: tools/sample_error.py [--reference SHARE] SWEEP_DIR...
       SWEEP_DIR: the output of scenarios/sweeps/traffic-sample-error.toml (or of
       traffic-sample-full-campus.toml, with --reference 0.04); several directories, e.g.
       the same sweep run for different seeds, are pooled.
       --reference: the share the others are compared with (default 1, full simulation).

For every metric and sample share: the mean over seeds, its difference from the mean of the
reference runs (by default the full ones, traffic_sample = 1) in percent, and that difference in units of its standard
error (|z| well above 2 is a bias the seeds' spread does not explain). Plain Python, no
third-party packages.
"""
import csv
import math
import sys
from collections import defaultdict


def main(paths, reference):
    rows = [r for path in paths for r in csv.DictReader(open(f"{path}/sweep.csv", newline=""))]
    key = "run.traffic_sample"
    metrics = list(dict.fromkeys(c for r in rows for c in r if c not in ("run", "point", "seed", key)))
    by = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for m in metrics:
            if r.get(m) not in ("", None):
                by[float(r[key])][m].append(float(r[m]))
    shares = sorted(by, reverse=True)
    if reference not in by:
        sys.exit(f"no runs at the reference share {reference} (shares: {', '.join(map(str, shares))})")
    full = by[reference]
    print(f"{'metric':44} {'share':>6} {'runs':>4} {'mean':>16} {'vs ref':>9} {'z':>6}")
    for m in metrics:
        ref = full.get(m, [])
        if len(ref) < 2:
            continue
        rmean = sum(ref) / len(ref)
        rvar = sum((x - rmean) ** 2 for x in ref) / (len(ref) - 1)
        for s in shares:
            xs = by[s].get(m, [])
            if len(xs) < 2:
                continue
            mean = sum(xs) / len(xs)
            var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
            rel = (mean - rmean) / rmean * 100 if rmean else float("nan")
            se = math.sqrt(var / len(xs) + rvar / len(ref))
            z = (mean - rmean) / se if se > 0 else float("nan")
            print(f"{m:44} {s:6.2f} {len(xs):4} {mean:16.4f} {rel:8.2f}% {z:6.1f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    reference = 1.0
    if args[:1] == ["--reference"] and len(args) >= 2:
        reference = float(args[1])
        args = args[2:]
    if not args:
        sys.exit(__doc__)
    main(args, reference)
