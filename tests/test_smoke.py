from datetime import UTC, datetime

from tests.conftest import make_integration
from tests.helpers import definitions, import_range


def test_range_import_lands_rows(settings, warehouse, instance):
    integration = make_integration()
    defs = definitions(settings, integration)
    start, end = datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 16, 2, tzinfo=UTC)
    result = import_range(defs, instance, integration.id, start, end)
    assert result.success
    rows = warehouse.query("SELECT count(*) AS n FROM contact_intervals")["n"][0]
    assert rows == 3 * 8
