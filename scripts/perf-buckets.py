#!/usr/bin/env python3
"""Sorts a profile's samples into named buckets and prints each bucket's cost per operation.

Reads `perf script -F comm,ip,sym` output of a `perf record --call-graph dwarf` run (frames
from leaf to root, one sample per block). Each sample goes to the first bucket, in the order
given, all of whose anchors appear somewhere in its stack (a substring of a frame's symbol);
`idle` (the kernel's halt) is set apart, and what matches nothing is `other`. The busy samples
share US_PER_OP (the run's measured CPU per operation), so each bucket reads in µs per op.
With two profiles, it prints both and the difference (how BENCHMARKS.md splits a two-shard
script's cost against a one-shard one's).

    scripts/perf-buckets.py ONE.txt US_PER_OP [TWO.txt US_PER_OP] -- NAME=ANCHOR[+ANCHOR] ...

Example (the buckets of "Issues 22 and 20: where a two-shard script's cost goes"):

    perf record -F 800 --call-graph dwarf,16000 -C 0 -o two.data -- sleep 1   # under load
    perf script -i two.data -F comm,ip,sym > two.txt                          # one.txt likewise
    scripts/perf-buckets.py one.txt 3.243 two.txt 7.9 -- 'lend-wait=Host::lend+handoff::Shared' \\
        'lend-job=Host::lend' 'call-wait=Take<T>::wait' 'lua=lua_resume' 'send=__libc_send'
"""

import collections
import re
import sys

IDLE = "pv_native_safe_halt"


def samples(path):
    """The stacks of `path`'s samples: lists of symbols, leaf first."""
    stacks, stack = [], None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith(("\t", " ")):
                if stack:
                    stacks.append(stack)
                stack = [] if line.strip() else None
                continue
            text = line.strip()
            if not text or stack is None:
                continue
            m = re.match(r"^[0-9a-f]+\s+(.*)$", text)
            stack.append(re.sub(r"\s+\(inlined\)$", "", m.group(1) if m else text))
    if stack:
        stacks.append(stack)
    return stacks


def bucket(stack, buckets):
    if any(IDLE in frame for frame in stack):
        return "idle"
    for name, anchors in buckets:
        if all(any(a in frame for frame in stack) for a in anchors):
            return name
    return "other"


def costs(path, us_per_op, buckets):
    counts = collections.Counter(bucket(s, buckets) for s in samples(path))
    busy = sum(n for name, n in counts.items() if name != "idle")
    if busy == 0:
        sys.exit(f"{path}: no busy samples")
    print(f"{path}: {busy} busy samples, {counts['idle']} idle", file=sys.stderr)
    return {name: n * us_per_op / busy for name, n in counts.items() if name != "idle"}


def main(argv):
    if "--" not in argv:
        sys.exit(__doc__)
    split = argv.index("--")
    runs, specs = argv[:split], argv[split + 1 :]
    if len(runs) not in (2, 4):
        sys.exit(__doc__)
    buckets = []
    for spec in specs:
        name, _, anchors = spec.partition("=")
        buckets.append((name, [a for a in anchors.split("+") if a]))
    tables = [costs(runs[i], float(runs[i + 1]), buckets) for i in range(0, len(runs), 2)]
    names = [name for name, _ in buckets] + ["other"]
    for name in names:
        row = [t.get(name, 0.0) for t in tables]
        if not any(row):
            continue
        cells = " ".join(f"{v:7.3f}" for v in row)
        diff = f" {row[1] - row[0]:+7.3f}" if len(row) == 2 else ""
        print(f"{name:<16}{cells}{diff}")
    totals = " ".join(f"{sum(t.values()):7.3f}" for t in tables)
    print(f"{'total':<16}{totals}")


if __name__ == "__main__":
    main(sys.argv[1:])
