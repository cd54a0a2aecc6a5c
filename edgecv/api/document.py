"""The OpenAPI document a running agent serves: FastAPI's document, completed with what only this agent
knows, so that generated clients and contract fuzzers (schemathesis) reach the real logic.

- **security**: with an ``api.token`` every ``/v1`` route and ``/metrics`` require the bearer token; a
  token-less agent (loopback only) requires none, so there the requirement is optional (``[{}, bearer]``).
- **examples**: the one tenant this agent serves (any other gets ``404 tenant_not_found``), a 4x4 BMP
  for the upload and a webhook URL; ``model`` fields list the installed models (``enum``): the server
  refuses any other with ``422 model_not_found``.
- **links**: how ids flow from one call to the next (upload → observation, image, start job → get job
  → its observation, flag job; webhook created → get, delete; SKU images added → get, delete the SKU). An upload's
  own ``job`` is null without ``model``,
  so the link to a job goes through ``startJob`` (which returns the same job for the same model).
"""

from __future__ import annotations

import copy
import struct
from typing import Any

from edgecv.config import Config

SCHEME = "HTTPBearer"  # the name FastAPI gives routes.require_token's HTTPBearer

# A 4x4 grey 24-bit BMP whose bytes are all ASCII, so that it survives as a JSON string example.
EXAMPLE_BMP = (
    b"BM"
    + struct.pack("<IHHI", 54 + 48, 0, 0, 54)
    + struct.pack("<IiiHHIIiiII", 40, 4, 4, 1, 24, 0, 48, 0, 0, 0, 0)
) + b"\x40" * 48
EXAMPLE_WEBHOOK_URL = "https://hooks.example.com/edgecv"
# A 16x16 grey BMP, also all ASCII: catalogue references must be 8 px or more on each side.
EXAMPLE_BMP_16 = (
    b"BM"
    + struct.pack("<IHHI", 54 + 768, 0, 0, 54)
    + struct.pack("<IiiHHIIiiII", 40, 16, 16, 1, 24, 0, 768, 0, 0, 0, 0)
) + b"\x40" * 768
EXAMPLE_SKU = "example-sku"


def _link(operation_id: str, description: str, *, body: dict | None = None, **params: str) -> dict:
    link: dict[str, Any] = {
        "operationId": operation_id,
        "description": description,
        "parameters": {
            "path.tenantId": "$request.path.tenantId",
            **{f"path.{k}": v for k, v in params.items()},
        },
    }
    if body is not None:
        link["requestBody"] = body
    return link


OBSERVATION_LINKS = {
    "getObservation": _link("getObservation", "The observation just stored.", id="$response.body#/id"),
    "getObservationImage": _link("getObservationImage", "Its image bytes.", id="$response.body#/id"),
    "startJob": _link(
        "startJob",
        "Queue a job for it (with any installed model).",
        body={"observationId": "$response.body#/id"},
    ),
}

# (operationId, status) → links from that response
LINKS: dict[tuple[str, str], dict[str, Any]] = {
    ("createObservation", "201"): OBSERVATION_LINKS,
    ("getObservation", "200"): OBSERVATION_LINKS,
    **{
        ("startJob", status): {
            "getJob": _link("getJob", "The job.", id="$response.body#/id"),
            "getObservation": _link("getObservation", "Its observation.", id="$response.body#/observationId"),
            "flagJob": _link("flagJob", "Keep its image for labelling.", id="$response.body#/id"),
        }
        for status in ("200", "201")
    },
    ("getJob", "200"): {
        "getObservation": _link("getObservation", "Its observation.", id="$response.body#/observationId"),
        "flagJob": _link("flagJob", "Keep its image for labelling.", id="$response.body#/id"),
    },
    ("createWebhook", "201"): {
        "getWebhook": _link("getWebhook", "The endpoint just registered.", id="$response.body#/id"),
        "deleteWebhook": _link("deleteWebhook", "Remove it.", id="$response.body#/id"),
    },
    ("getWebhook", "200"): {
        "deleteWebhook": _link("deleteWebhook", "Remove it.", id="$response.body#/id"),
    },
    ("addSkuImages", "201"): {
        "getSku": _link("getSku", "The SKU just added to.", sku="$response.body#/id"),
        "deleteSku": _link("deleteSku", "Remove it.", sku="$response.body#/id"),
    },
    ("getSku", "200"): {
        "deleteSku": _link("deleteSku", "Remove it.", sku="$response.body#/id"),
    },
}


def agent_document(base: dict[str, Any], config: Config, models: list[str]) -> dict[str, Any]:
    """``base`` (FastAPI's document, left untouched) completed for the agent of ``config`` with the
    installed ``models`` (names)."""
    doc = copy.deepcopy(base)
    operations = {
        op["operationId"]: op
        for item in doc.get("paths", {}).values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    }
    _security(doc, operations.values(), token=bool(config.api.token))
    _examples(doc, operations, config, models)
    for (operation_id, status), links in LINKS.items():
        response = operations.get(operation_id, {}).get("responses", {}).get(status)
        if response is not None:
            response["links"] = copy.deepcopy(links)
    return doc


def _security(doc: dict[str, Any], operations, *, token: bool) -> None:
    scheme = doc.get("components", {}).get("securitySchemes", {}).get(SCHEME)
    if scheme is None:
        return
    if token:
        scheme["description"] = "Required: this agent has an api.token (`Authorization: Bearer <api.token>`)."
        return
    scheme["description"] = (
        "Not needed by this agent: it has no api.token and listens on loopback only. An agent with an "
        "api.token (required for any other bind address) requires `Authorization: Bearer <api.token>` on "
        "every /v1 route, /metrics and /openapi.json, and says so in its own document."
    )
    for op in operations:
        if op.get("security") == [{SCHEME: []}]:
            op["security"] = [{}, {SCHEME: []}]


def _multipart_form(operations: dict[str, Any], operation_id: str) -> dict[str, Any] | None:
    """The multipart/form-data request body of an operation (None when it has none)."""
    body = operations.get(operation_id, {}).get("requestBody", {})
    return body.get("content", {}).get("multipart/form-data")


def _examples(doc: dict[str, Any], operations: dict[str, Any], config: Config, models: list[str]) -> None:
    tenant = config.tenant_id
    for op in operations.values():
        for param in op.get("parameters", []):
            if param.get("in") == "path" and param.get("name") == "tenantId":
                param["description"] = (
                    f"The tenant this agent serves ({tenant!r}, config tenant_id); any other gets "
                    "404 tenant_not_found."
                )
                param["example"] = tenant
                param["schema"]["examples"] = [tenant]
    schemas = doc.get("components", {}).get("schemas", {})
    model = config.default_model if config.default_model in models else (models[0] if models else None)
    form = _multipart_form(operations, "createObservation")
    model_fields = [schemas.get("StartJob", {}).get("properties", {}).get("model")]
    if form is not None:
        model_fields.append(form["schema"]["properties"].get("model"))
    for field in filter(None, model_fields):
        field["description"] = (
            "An installed model package (GET …/cv/models); others get 422 model_not_found. "
            "This document lists the ones installed when it was fetched."
        )
        if models:
            field["enum"] = list(models)
    for op in operations.values():
        for param in op.get("parameters", []):
            if param.get("in") == "path" and param.get("name") == "sku":
                param["example"] = EXAMPLE_SKU
    match = _multipart_form(operations, "matchCatalog")
    if match is not None:
        field = match["schema"]["properties"]["model"]
        field["description"] = "An installed detector (GET …/cv/models); default: the agent's default_model."
        if models:
            field["enum"] = list(models)
        match["example"] = {"file": [EXAMPLE_BMP_16.decode("ascii")], "top": 3}
    images = _multipart_form(operations, "addSkuImages")
    if images is not None:
        images["example"] = {
            "file": [EXAMPLE_BMP_16.decode("ascii")],
            "name": "Example pack",
            "expectedPrice": 1.25,
        }
    if "WebhookIn" in schemas:
        schemas["WebhookIn"]["properties"]["url"]["examples"] = [EXAMPLE_WEBHOOK_URL]
    if form is not None:
        example: dict[str, Any] = {"file": EXAMPLE_BMP.decode("ascii")}
        if model is not None:
            example["model"] = model
        form["example"] = example
