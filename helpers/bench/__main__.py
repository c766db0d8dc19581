"""Command line for the course's benchmarks.

``python -m helpers.bench [--quick] [--output F]``
    the whole course benchmark (see ``helpers.bench.suite``): what notebook 10 runs
``python -m helpers.bench pool [--quick] [--methods fork,forkserver,spawn] [--output F]``
    the pool benchmark from notebook 05 (see ``helpers.bench.pool_suite``)
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from pathlib import Path

from helpers.bench import pool_suite, suite
from helpers.core import config, measure

SUITES = ("course", "pool")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", nargs="?", default="course", choices=SUITES,
                        help="which benchmark to run (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="short run (also: COURSE_QUICK=1); results say which mode")
    parser.add_argument("--methods", default=None,
                        help="start methods, comma-separated (pool: default "
                             f"{','.join(pool_suite.default_methods())}; course: the one start "
                             "method for its pools, default COURSE_START_METHOD or the "
                             "platform's)")
    parser.add_argument("--parts", default=",".join(suite.PARTS),
                        help="course benchmark only: which parts (default: all)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved repeats (default: 5, quick mode 3)")
    parser.add_argument("--output", type=Path, default=None,
                        help="where to write the JSON result (default: print only)")
    args = parser.parse_args(argv)

    quick = args.quick or config.quick_mode()
    methods = [m.strip() for m in (args.methods or "").split(",") if m.strip()]
    for method in methods:
        if method not in multiprocessing.get_all_start_methods():
            parser.error(f"start method {method!r} is not available here; "
                         f"choose from {', '.join(multiprocessing.get_all_start_methods())}")
    repeats = args.repeats if args.repeats is not None else (3 if quick else 5)
    if not 1 <= repeats <= 50:
        parser.error("--repeats must be 1 to 50")

    if args.suite == "pool":
        document = pool_suite.run(quick=quick, methods=methods or pool_suite.default_methods(),
                                  repeats=repeats, progress=sys.stderr)
        text = pool_suite.report(document)
    else:
        if len(methods) > 1:
            parser.error("the course benchmark uses one start method; give one to --methods")
        parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
        unknown = [p for p in parts if p not in suite.PARTS]
        if unknown or not parts:
            parser.error(f"unknown part(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(suite.PARTS)}")
        document = suite.run(quick=quick, repeats=repeats,
                             start_method=methods[0] if methods else None, parts=parts,
                             progress=sys.stderr)
        text = suite.report(document)
    print(text)
    if args.output is not None:
        measure.save_results(args.output, document)
        print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
