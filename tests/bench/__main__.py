"""`make bench`: measured side by side in one run; ratios are the numbers to read (the machine is noisy)."""

from __future__ import annotations

import argparse
import sys

from tests.bench import (
    check_latency,
    conversation,
    e2e,
    redaction,
    scan_throughput,
    stages,
    startup,
    usage_observer,
)


def main() -> int:
    p = argparse.ArgumentParser(prog="make bench")
    p.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    p.add_argument("--only", choices=["scan", "check", "stages", "conversation", "startup", "e2e", "usage", "redaction"],
                   help="run one part")
    p.add_argument("--rounds", type=int, help="e2e: interleaved rounds (3; --quick: 1)")
    args = p.parse_args()
    if args.only in (None, "scan"):
        scan_throughput.run(quick=args.quick)
    if args.only in (None, "check"):
        check_latency.run(quick=args.quick)
    if args.only in (None, "stages"):
        stages.run(quick=args.quick)
    if args.only in (None, "conversation"):
        conversation.run(quick=args.quick)
    if args.only in (None, "startup"):
        startup.run(quick=args.quick)
    if args.only in (None, "e2e") and not e2e.run(quick=args.quick, rounds=args.rounds):
        return 1  # a correctness check failed: requests were not all checked and allowed
    if args.only in (None, "usage") and not usage_observer.run(quick=args.quick):
        return 1  # a request failed or the budget was not charged
    if args.only in (None, "redaction") and not redaction.run(quick=args.quick):
        return 1  # a request failed, or rehydration did not put the value back
    return 0


if __name__ == "__main__":
    sys.exit(main())
