"""`wfm-etl` (and `python -m etl`): the ingestion service's commands start without loading
Dagster and the import machinery (a restarted push server answers a second sooner); every
other command is `etl.cli`'s."""

from __future__ import annotations

import sys

INGEST_COMMANDS = ("serve", "api-key")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in INGEST_COMMANDS:
        from etl.ingest.server import main as ingest_main

        return ingest_main(argv)
    from etl.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
