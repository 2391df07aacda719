#!/usr/bin/env python3
"""Per-kernel time table from Nsight Compute's raw CSV.

    ncu --csv --page raw --print-units base --metrics gpu__time_duration.sum ... > run.csv
    python3 scripts/gpu/ncu_kernels.py run.csv [TOP]

Sums gpu__time_duration.sum (ns) over the launches of each kernel (its name
without the argument list) and prints the TOP (default 14) by total time,
with launch counts, mean microseconds, the share of the total, and the total
itself: where a profiled prefill or decode step spends its GPU time
(scripts/gpu/build_and_test.sh decode_kernels)."""
import csv
import re
import sys


def short(name):
    """The kernel's name without its parameter list; template arguments kept."""
    depth = 0
    for i, c in enumerate(name):
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif c == "(" and depth == 0 and i > 0:
            return name[:i]
    return name


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 14
    rows = [r for r in csv.reader(open(sys.argv[1], errors="replace")) if r]
    head = next((i for i, r in enumerate(rows) if "Kernel Name" in r and "gpu__time_duration.sum" in r), None)
    if head is None:
        print("no kernel rows (was anything profiled?)")
        return 1
    ki, ti = rows[head].index("Kernel Name"), rows[head].index("gpu__time_duration.sum")
    total, count = {}, {}
    for r in rows[head + 1:]:
        if len(r) <= max(ki, ti):
            continue
        v = r[ti].replace(",", "")
        if not re.fullmatch(r"[0-9.]+(e[-+]?[0-9]+)?", v):
            continue  # the units row
        k = short(r[ki])
        total[k] = total.get(k, 0.0) + float(v)
        count[k] = count.get(k, 0) + 1
    whole = sum(total.values())
    if not whole:
        print("no kernel times")
        return 1
    print(f"{'total us':>10} {'share':>6} {'launches':>8} {'mean us':>8}  kernel")
    for k in sorted(total, key=total.get, reverse=True)[:top]:
        print(f"{total[k] / 1e3:10.1f} {total[k] / whole:6.1%} {count[k]:8d} {total[k] / count[k] / 1e3:8.2f}  {k[:110]}")
    print(f"{whole / 1e3:10.1f} 100.0% {sum(count.values()):8d}  all kernels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
