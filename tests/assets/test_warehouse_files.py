"""The warehouse-files check on a real import: a file the warehouse did not write is named."""

from datetime import UTC, datetime, timedelta

import duckdb

from etl.assets.warehouse_files import CHECK_NAME
from tests.conftest import make_integration
from tests.helpers import definitions, import_range

START = datetime(2026, 11, 16, tzinfo=UTC)


def check_result(result):
    (evaluation,) = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.check_name == CHECK_NAME
    ]
    return evaluation


def test_a_copy_an_analyst_wrote_into_the_warehouse_is_named_and_not_counted(
    settings, warehouse, instance
):
    integration = make_integration()
    defs = definitions(settings, integration)
    result = import_range(defs, instance, integration.id, START, START + timedelta(hours=2))
    assert check_result(result).passed
    rows = warehouse.query("SELECT count(*) AS n FROM contact_intervals")["n"][0]
    (day,) = warehouse.slots("contact_intervals", integration.id).values()
    copy = day.parent / "zz.parquet"
    with duckdb.connect(str(warehouse.catalog_path), read_only=True) as con:
        con.execute(f"COPY (SELECT * FROM contact_intervals) TO '{copy}'")
    result = import_range(defs, instance, integration.id, START, START + timedelta(hours=2))
    evaluation = check_result(result)
    assert not evaluation.passed
    assert evaluation.severity.value == "WARN"
    assert str(copy.relative_to(warehouse.path)) in evaluation.description
    assert evaluation.metadata["foreign_files"].value == 1
    assert warehouse.query("SELECT count(*) AS n FROM contact_intervals")["n"][0] == rows
    assert copy.exists()
