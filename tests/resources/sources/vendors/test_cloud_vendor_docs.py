"""The configuration examples on the UJET, Vonage and Amazon Connect pages are valid as
written, and each vendor is registered with the identifier its page documents."""

from __future__ import annotations

import re

import pytest
import yaml

from etl.config import PROJECT_ROOT, parse_integrations
from etl.identifiers import identifier_kind
from etl.resources.sources import VENDORS, build_source

PAGES = {"ujet": "email", "vonage": "agent_id", "amazon_connect": "user_name"}


@pytest.mark.parametrize(("vendor", "kind"), PAGES.items())
def test_the_documented_example_is_a_valid_integration(vendor: str, kind: str):
    page = (PROJECT_ROOT / "docs" / "sources" / f"{vendor}.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", page, flags=re.S)
    (integration,) = parse_integrations({"integrations": yaml.safe_load(block)})
    assert integration.vendor == vendor
    assert vendor in VENDORS
    assert identifier_kind(integration) == kind
    assert build_source(integration).integration_id == integration.id
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert f"| `{vendor}` |" in readme
    assert f"docs/sources/{vendor}.md" in readme
