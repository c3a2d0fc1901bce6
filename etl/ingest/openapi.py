# ruff: noqa: N815 - the API's field names are camelCase, as its documented shape has them
"""The service's OpenAPI document, built from pydantic models of its bodies.

The models describe the API; requests are not parsed through them (the pandera schemas judge
the records, at 2,000 records a second, and say why per record). `docs/api/openapi.json` is
this document as committed; a test checks that the running server serves the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from etl.ingest.landing import MAX_RECORDS

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "api" / "openapi.json"
MAX_BODY_MIB = 8


class ContactProperties(BaseModel):
    offered: int = Field(ge=0, description="Contacts offered in the interval.")
    handled: int = Field(ge=0, description="Contacts answered (handled); at most offered.")
    abandoned: int = Field(ge=0, description="Contacts abandoned; at most offered - handled.")
    duration: float = Field(ge=0, description="Total handle time of the handled contacts, s.")


class ContactEvent(BaseModel):
    queueIdentifier: str = Field(description="The queue's id in your system (external queue).")
    queueName: str | None = Field(default=None, description="Display name (informational).")
    channel: str = Field(
        description="calls, chats, emails, tickets, social or documents (call, chat, email, "
        "ticket and document are accepted too)."
    )
    timestamp: str = Field(
        description="Interval start, ISO 8601 with an offset, on the integration's interval "
        "grid in its timezone, e.g. 2026-11-18T09:15:00+01:00."
    )
    properties: ContactProperties


class Meta(BaseModel):
    model_config = ConfigDict(extra="allow")
    batchId: str | None = Field(
        default=None,
        max_length=200,
        description="Makes a retried request a no-op (like the Idempotency-Key header, which "
        "wins when both are given).",
    )


class ContactEventsBody(BaseModel):
    data: list[ContactEvent] = Field(max_length=MAX_RECORDS)
    meta: Meta | None = None


class AgentStatus(BaseModel):
    agentIdentifier: str = Field(description="The agent's user identifier, matched exactly.")
    activityIdentifier: str = Field(description="The external activity (state) the agent is in.")
    startTime: str = Field(description="When the state began, ISO 8601 with an offset.")
    endTime: str | None = Field(
        default=None,
        description="When it ended; leave it out while the agent is still in the state, and "
        "send the segment again with its end (same agent and startTime) when it ends.",
    )


class AgentStatusesBody(BaseModel):
    data: list[AgentStatus] = Field(max_length=MAX_RECORDS)
    meta: Meta | None = None


class RecordError(BaseModel):
    index: int | None = Field(description="Position of the record in `data` (0-based).")
    reasons: list[str] = Field(description="Every rule the record broke.")


class LandedResponse(BaseModel):
    integrationId: str
    batchId: str = Field(description="The Idempotency-Key / meta.batchId, or a generated id.")
    status: Literal["landed", "held"] = Field(
        description="held: the integration is paused; the records are kept and imported when "
        "it is resumed."
    )
    accepted: int
    rejected: int
    duplicates: int = Field(description="Exact copies within the batch, kept once.")
    replayed: bool = Field(description="A retry of a batch landed before: nothing landed again.")
    errors: list[RecordError]


class ErrorResponse(BaseModel):
    error: str


def _responses(accepted: str) -> dict[str, Any]:
    def body(model: str, description: str) -> dict[str, Any]:
        schema = {"$ref": f"#/components/schemas/{model}"}
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    return {
        "202": body("LandedResponse", accepted),
        "207": body(
            "LandedResponse",
            "Some records were refused (errors lists each with its reasons); the others are "
            "landed.",
        ),
        "400": body("ErrorResponse", "Not JSON, or no `data` list, or a bad batch id."),
        "401": body("ErrorResponse", "Missing, unknown or rotated API key. Nothing landed."),
        "403": body("ErrorResponse", "The key belongs to another integration. Nothing landed."),
        "404": body(
            "ErrorResponse", "No such push integration, or it carries no data of this kind."
        ),
        "413": body(
            "ErrorResponse",
            f"Body above {MAX_BODY_MIB} MiB or more than {MAX_RECORDS} records. Nothing landed.",
        ),
        "422": body(
            "LandedResponse",
            "Every record was refused (or the batch id was reused for "
            "another body). Nothing landed.",
        ),
        "503": body("ErrorResponse", "The landing store is unavailable. Nothing landed; retry."),
    }


def _operation(summary: str, body_model: str, description: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": description,
        "security": [{"apiKey": []}],
        "parameters": [
            {
                "name": "integration_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "The integration's id in integrations.yaml (vendor: api).",
            },
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 200},
                "description": "A retried request with the same key lands nothing again and "
                "gets the first answer (with the header Idempotency-Replayed: true).",
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{body_model}"}}
            },
        },
        "responses": _responses(
            "Every record is landed: on disk (fsynced) before this answer was sent."
        ),
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the ingestion service."""
    schemas: dict[str, Any] = {}
    for model in (ContactEventsBody, AgentStatusesBody, LandedResponse, ErrorResponse):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "wfm-etl ingestion service",
            "version": "1",
            "description": "Push contact data and agent status of `vendor: api` integrations. "
            f"Batches of up to {MAX_RECORDS} records, bodies up to {MAX_BODY_MIB} MiB. A 2xx "
            "means the batch is durably landed; the hourly import writes it to the warehouse "
            "and agent status shows in agent_status_live within seconds.",
        },
        "paths": {
            "/v1/integrations/{integration_id}/contact-events": {
                "post": _operation(
                    "Push contact data",
                    "ContactEventsBody",
                    "Per queue, channel and interval start. Sending an interval again replaces it.",
                )
            },
            "/v1/integrations/{integration_id}/agent-statuses": {
                "post": _operation(
                    "Push agent status",
                    "AgentStatusesBody",
                    "Segments per agent; a segment sent again (same agent and startTime) "
                    "replaces the earlier version, e.g. to close an open one.",
                )
            },
            "/v1/health": {
                "get": {
                    "summary": "Liveness",
                    "responses": {"200": {"description": "The service is up."}},
                }
            },
        },
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The integration's API key (`wfm-etl api-key create <id>`).",
                }
            },
        },
    }


def committed_text() -> str:
    """The document as `docs/api/openapi.json` holds it."""
    return json.dumps(openapi_document(), indent=2) + "\n"
