"""One range run in its own process, as Dagster's run launcher would start it.

Prints one JSON line: success, wall seconds and the process's peak RSS, so the benchmark can
report the peak memory of any process.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from datetime import datetime

import dagster as dg
from dagster._utils.warnings import BetaWarning, PreviewWarning

from etl.cli import run_import
from etl.config import Settings
from etl.definitions import build_definitions


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=BetaWarning)
    warnings.filterwarnings("ignore", category=PreviewWarning)
    parser = argparse.ArgumentParser()
    parser.add_argument("integration")
    parser.add_argument("start")
    parser.add_argument("end")
    args = parser.parse_args(argv)
    started = time.time()
    defs = build_definitions(Settings.from_env())
    with dg.DagsterInstance.get() as instance:
        result = run_import(
            defs,
            instance,
            args.integration,
            datetime.fromisoformat(args.start),
            datetime.fromisoformat(args.end),
            trigger="bench",
        )
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "ok": result.success,
                "run_id": result.run_id,
                "started": started,
                "ended": time.time(),
                "peak_rss_mib": round(peak_kib / 1024, 1),
            }
        )
    )
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
