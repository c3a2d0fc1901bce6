"""The HTTP service's request bodies, mapped onto the canonical records `Landing` takes.

The shapes follow the documented push API of the product we follow ("injixo API"):
contact events per queue, channel and interval start, with offered / handled / abandoned /
duration properties, and agent statuses as segments (an absent `endTime`: still in the
state). Field names are the API's; values go through unchanged, so the pandera schemas judge
them exactly as they judge any other source's.
"""

from __future__ import annotations

import re
from typing import Any

CONTACT_EVENTS = "contact-events"
AGENT_STATUSES = "agent-statuses"
KIND_OF_PATH = {CONTACT_EVENTS: "contacts", AGENT_STATUSES: "agent_status"}
# The API's channel names (singular) next to the canonical ones.
CHANNELS = {
    "call": "calls",
    "chat": "chats",
    "email": "emails",
    "ticket": "tickets",
    "document": "documents",
}
OFFSET = re.compile(r"T.*(Z|[+-]\d\d(:?\d\d)?)$", re.IGNORECASE)
NO_OFFSET_RULE = "{field}: ISO 8601 with an offset, e.g. 2026-11-18T09:00:00+01:00 or ...Z"


class BodyError(ValueError):
    """The body as a whole is unusable (not JSON, no `data` list): answered with 400."""


def records_of(body: Any) -> tuple[list[Any], dict]:
    """The `data` list and the `meta` object of a request body."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise BodyError('the body must be a JSON object with a "data" list')
    meta = body.get("meta") or {}
    if not isinstance(meta, dict):
        raise BodyError('"meta" must be a JSON object')
    return body["data"], meta


def _time_problem(value: Any, field: str) -> list[str]:
    if isinstance(value, str) and not OFFSET.search(value.strip()):
        return [NO_OFFSET_RULE.format(field=field)]
    return []


def contact_records(data: list[Any]) -> tuple[list[Any], dict[int, list[str]]]:
    """Contact events -> canonical contact rows, and the records refused before validation."""
    records: list[Any] = []
    refused: dict[int, list[str]] = {}
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            records.append(item)
            continue
        props = item.get("properties")
        props = props if isinstance(props, dict) else {}
        channel = item.get("channel")
        records.append(
            {
                "external_queue_id": item.get("queueIdentifier"),
                "channel": CHANNELS.get(channel, channel) if isinstance(channel, str) else channel,
                "interval_start": item.get("timestamp"),
                "offered": props.get("offered"),
                "answered": props.get("handled"),
                "abandoned": props.get("abandoned"),
                "handle_time_s": props.get("duration"),
            }
        )
        if problems := _time_problem(item.get("timestamp"), "timestamp"):
            refused[index] = problems
    return records, refused


def agent_records(data: list[Any]) -> tuple[list[Any], dict[int, list[str]]]:
    """Agent statuses -> canonical segments (no `endTime`: open), and records refused."""
    records: list[Any] = []
    refused: dict[int, list[str]] = {}
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            records.append(item)
            continue
        records.append(
            {
                "user_identifier": item.get("agentIdentifier"),
                "external_activity": item.get("activityIdentifier"),
                "start_utc": item.get("startTime"),
                "end_utc": item.get("endTime"),
            }
        )
        problems = _time_problem(item.get("startTime"), "startTime")
        problems += _time_problem(item.get("endTime"), "endTime")
        if problems:
            refused[index] = problems
    return records, refused


MAPPERS = {CONTACT_EVENTS: contact_records, AGENT_STATUSES: agent_records}
