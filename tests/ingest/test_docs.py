"""The documented curl examples and live-view query work against the real server."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from etl.config import PROJECT_ROOT
from etl.resources.warehouse import Warehouse
from tests.ingest.server import Home, push_integration, running

API_DOC = PROJECT_ROOT / "docs" / "sources" / "api.md"
README = PROJECT_ROOT / "README.md"
ANALYSTS_DOC = PROJECT_ROOT / "docs" / "analysts.md"


def blocks(path: Path, start: str) -> list[str]:
    found = re.findall(r"^```\w*\n(.*?)^```", path.read_text(), re.MULTILINE | re.DOTALL)
    return [b for b in found if b.startswith(start)]


def test_documented_curl_examples_and_query(home: Home) -> None:
    home.configure(push_integration(id="paris_push", timezone="Europe/Paris"))
    key = home.key("paris_push")
    commands = blocks(API_DOC, "curl") + blocks(README, "curl")
    assert len(commands) == 3
    with running(home) as server:
        for command in commands:
            done = subprocess.run(
                ["bash", "-c", command.replace("127.0.0.1:8088", f"127.0.0.1:{server.port}")],
                env={**home.env, "WFM_API_KEY": key},
                capture_output=True,
                text=True,
                check=True,
            )
            answer = json.loads(done.stdout)
            assert (answer["status"], answer["rejected"]) == ("landed", 0), answer
        time.sleep(2)
    store = home.store()
    try:
        assert store.count_records("paris_push", "contacts") == 1
        assert store.count_records("paris_push", "agent_status") == 3  # README's open segment
    finally:
        store.dispose()
    (query,) = [b for b in blocks(ANALYSTS_DOC, "SELECT") if "agent_state_now" in b]
    Warehouse(root=str(home.root / "warehouse")).query(query)  # runs (the example is 2026-11-18)
