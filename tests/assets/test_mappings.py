"""Queue mapping files as data engineers break them: each fails naming the file, the line and
the problem (never a bare decoding or parsing error), and the current mapping stays."""

import dagster as dg
import pytest

from etl.assets.agent_mappings import activities
from etl.assets.mappings import MappingFiles, queue_mappings

HEADER = b"integration_id,external_queue_id,destination_queue\n"
GOOD = HEADER + b"sim,q1,Sales\n"


def materialize(settings, warehouse, instance, asset=queue_mappings):
    return dg.materialize(
        [asset],
        instance=instance,
        resources={
            "mapping_files": MappingFiles(directory=str(settings.mappings_dir)),
            "warehouse": warehouse,
        },
        raise_on_error=False,
    )


def failure(result) -> str:
    [message] = [
        e.event_specific_data.error.message
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]
    return message


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (HEADER + b"sim,q1,Verk\xe4ufe\n", "line 2, column 12: not UTF-8 text (byte 0xe4)"),
        (b"", "the file is empty; its first line names the columns: integration_id, "),
        (b"\n\n", "the file is empty"),
        (HEADER + b"sim,q1,Sales,Support\n", "line 2: 4 values, but the header names 3 columns"),
        (HEADER + b'sim,q1,"Sales\n', "line 2: unexpected end of data"),
        (b"integration_id,queue,destination_queue\nsim,q1,Sales\n", "line 1: missing column(s)"),
        (HEADER.replace(b"\n", b",destination_queue\n"), "column(s) named twice"),
        (HEADER + b"sim,q1,Sales\n\nsim,q1,Support\n", "line 4: external_queue_id"),
    ],
    ids=["latin-1", "empty", "blank lines", "extra value", "open quote", "renamed", "twice", "dup"],
)
def test_bad_queue_mapping_file_is_named_with_its_line(
    settings, warehouse, instance, content, problem
):
    path = settings.mappings_dir / "queue_mappings.csv"
    path.write_bytes(GOOD)
    assert materialize(settings, warehouse, instance).success
    path.write_bytes(content)
    result = materialize(settings, warehouse, instance)
    assert not result.success
    message = failure(result)
    assert f"Failure: {path}: invalid mapping file: " in message
    assert problem in message
    assert "current mapping stays in place" in message
    assert "Error" not in message.split(": invalid mapping file: ")[1]  # no raw exception
    mapped = warehouse.query("SELECT destination_queue FROM queue_mappings")
    assert mapped["destination_queue"].tolist() == ["Sales"]


def test_an_activity_id_that_is_not_a_number_is_named_once(settings, warehouse, instance):
    path = settings.mappings_dir / "activities.csv"
    path.write_text("activity_id,name\n2,Break\nabc,Lunch\n", encoding="utf-8")
    result = materialize(settings, warehouse, instance, activities)
    assert not result.success
    message = failure(result)
    assert f"{path}: invalid mapping file: line 3: activity_id not a whole number (abc)." in (
        message
    )
    assert "TypeError" not in message
