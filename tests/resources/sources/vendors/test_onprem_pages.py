"""The configuration examples of the on-premise vendors' pages load as they are written."""

from __future__ import annotations

import re

import pytest
import yaml

from etl.config import PROJECT_ROOT, parse_integrations

PAGES = {
    "genesys_engage.md": ["genesys_engage"],
    "mitel.md": ["mitel"],
    "sikom.md": ["sikom", "sikom"],
}


@pytest.mark.parametrize(("page", "vendors"), PAGES.items())
def test_every_example_of_the_page_is_a_valid_integration(page, vendors):
    text = (PROJECT_ROOT / "docs" / "sources" / page).read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    loaded = [parse_integrations(yaml.safe_load(block), origin=page) for block in blocks]
    assert [i.vendor for integrations in loaded for i in integrations] == vendors
