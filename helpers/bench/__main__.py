"""Command line: ``python -m helpers.bench pool [--quick] [--methods fork,spawn] [--output F]``."""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from pathlib import Path

from .. import config, measure
from . import pool_overhead

SUITES = {"pool": pool_overhead}


def default_methods() -> list[str]:
    available = multiprocessing.get_all_start_methods()
    return [m for m in ("fork", "spawn") if m in available] or available[:1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__)
    parser.add_argument("suite", choices=sorted(SUITES), help="which benchmark to run")
    parser.add_argument("--quick", action="store_true",
                        help="short run (also: COURSE_QUICK=1); results say which mode")
    parser.add_argument("--methods", default=",".join(default_methods()),
                        help="start methods, comma-separated (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved repeats (default: 5, quick mode 3)")
    parser.add_argument("--output", type=Path, default=None,
                        help="where to write the JSON result (default: print only)")
    args = parser.parse_args(argv)

    quick = args.quick or config.quick_mode()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for method in methods:
        if method not in multiprocessing.get_all_start_methods():
            parser.error(f"start method {method!r} is not available here; "
                         f"choose from {', '.join(multiprocessing.get_all_start_methods())}")
    repeats = args.repeats if args.repeats is not None else (3 if quick else 5)
    if repeats < 1:
        parser.error("--repeats must be at least 1")

    suite = SUITES[args.suite]
    document = suite.run(quick=quick, methods=methods, repeats=repeats, progress=sys.stderr)
    print(suite.report(document))
    if args.output is not None:
        measure.save_results(args.output, document)
        print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
