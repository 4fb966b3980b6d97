"""`make bench`: measured side by side in one run; ratios are the numbers to read (the machine is noisy)."""

from __future__ import annotations

import argparse
import sys

from tests.bench import check_latency, scan_throughput


def main() -> int:
    p = argparse.ArgumentParser(prog="make bench")
    p.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    p.add_argument("--only", choices=["scan", "check", "e2e"], help="run one part")
    args = p.parse_args()
    if args.only in (None, "scan"):
        scan_throughput.run(quick=args.quick)
    if args.only in (None, "check"):
        check_latency.run(quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
