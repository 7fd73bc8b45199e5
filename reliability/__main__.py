"""``python -m reliability [--quick] [--minutes M] [--seed S]``: run the chaos soak and the hostile-input
tests (counted per failure class), write RELIABILITY.md."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from ._report import render
from ._soak import SoakConfig, run_soak

ROOT = Path(__file__).resolve().parent.parent


def _progress(text: str) -> None:
    sys.stderr.write(f"[chaos] {text}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="~30 s smoke run (3,000 requests, 1,000 batch lines)")
    parser.add_argument("--minutes", type=float, default=None, help="wall-time bound (default 5; quick 1.5)")
    parser.add_argument("--seed", type=int, default=0, help="workload plan, answers and fault draws (default 0)")
    parser.add_argument("--requests", type=int, default=None, help="client requests (default 10,000)")
    parser.add_argument("--batch-lines", type=int, default=None, help="gigapy batch input lines (default 3,000)")
    parser.add_argument("--output", type=Path, default=None,
                        help="report path (default RELIABILITY.md at the repo root; with --quick, "
                             "RELIABILITY.quick.md in the run's work directory)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, batch files)")
    parser.add_argument("--no-hostile", action="store_true",
                        help="skip the hostile-input tests (the report then has no table of them)")
    parser.add_argument("--hostile-only", action="store_true",
                        help="run only the hostile-input tests and print their table (no soak, no report)")
    args = parser.parse_args(argv)
    if args.minutes is not None and not 0.2 <= args.minutes <= 60:
        parser.error("--minutes must be within [0.2, 60]")
    for name in ("requests", "batch_lines"):
        value = getattr(args, name)
        if value is not None and not 10 <= value <= 1_000_000:
            parser.error(f"--{name.replace('_', '-')} must be within [10, 1000000]")

    if args.hostile_only:
        from ._hostile import run as run_hostile
        from ._hostile import table

        report = run_hostile(_progress)
        sys.stdout.write("\n".join(table(report)) + "\n")
        return 0 if report.passed else 1

    overrides = {k: v for k, v in {"minutes": args.minutes, "requests": args.requests,
                                   "batch_lines": args.batch_lines}.items() if v is not None}
    keep = args.keep or args.quick
    config = (SoakConfig.quick(**overrides) if args.quick else SoakConfig(**overrides))
    config.seed = args.seed
    config.keep_workdir = keep
    config.progress = _progress
    command = "python -m reliability" + (" " + shlex.join(argv if argv is not None else sys.argv[1:])
                                         if (argv if argv is not None else sys.argv[1:]) else "")
    started = time.time()
    result = run_soak(config)
    hostile = None
    if not args.no_hostile:
        from ._hostile import run as run_hostile

        hostile = run_hostile(_progress)
    output = args.output
    if output is None:
        output = Path(result.workdir) / "RELIABILITY.quick.md" if args.quick else ROOT / "RELIABILITY.md"
    output.write_text(render(result, command=command, started=started, hostile=hostile), encoding="utf-8")
    for verdict in result.verdicts():
        _progress(f"{'PASS' if verdict.passed else 'FAIL'}  {verdict.name}: {verdict.evidence}")
    if hostile is not None:
        for c in hostile.classes:
            _progress(f"{'PASS' if c.ok else 'FAIL'}  hostile: {c.title}: {c.tests} tests, {c.cases} cases")
    _progress(f"report: {output}" + (f"; work directory: {result.workdir}" if keep else ""))
    return 0 if result.passed and (hostile is None or hostile.passed) else 1


if __name__ == "__main__":
    sys.exit(main())
