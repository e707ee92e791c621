"""Every answer the API tests receive, held to the OpenAPI document the server itself serves.

``check_response`` finds the operation a response answered (method and path template of
``/v1/openapi.json``), the documented response for its status code, and validates the body
against that schema — so a field the document does not describe, a missing key, or a value
outside an enum fails the test that received it, whatever that test was about.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

import jsonschema_rs
import requests


@functools.cache
def served_document(base_url: str) -> dict[str, Any]:
    """The OpenAPI document served at ``base_url`` (fetched once per server)."""
    answer = requests.get(f"{base_url}/v1/openapi.json", timeout=30)
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def check_response(base_url: str, response: requests.Response) -> requests.Response:
    """Assert ``response`` is exactly what the served document says it answers; return it."""
    document = served_document(base_url)
    method = (response.request.method or "GET").lower()
    path = urlsplit(response.request.url or "").path
    operation = _operation(document, method, path)
    if operation is None:  # an undocumented route answers in the error shape
        assert response.status_code in (404, 405), (method, path, response.status_code)
        _validate(document, "#/components/schemas/Error", response.json(), method, path)
        return response
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, (
        f"{method.upper()} {path} answered {response.status_code}, which its operation does not "
        f"document: {response.text[:300]}"
    )
    documented = _resolve(document, documented)
    content = documented.get("content", {})
    if "application/json" in content:
        assert response.headers.get("Content-Type", "").startswith("application/json")
        schema = content["application/json"]["schema"]
        _validate(document, schema["$ref"], response.json(), method, path)
    else:
        (media_type,) = content
        assert response.headers.get("Content-Type", "").startswith(media_type)
    return response


def _operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    segments = path.rstrip("/").split("/")
    for template, operations in document["paths"].items():
        expected = template.split("/")
        if len(expected) == len(segments) and method in operations and all(
            want == got or (want.startswith("{") and got)
            for want, got in zip(expected, segments, strict=True)
        ):
            operation: dict[str, Any] = operations[method]
            return operation
    return None


def _resolve(document: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in item:
        node: Any = document
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        item = node
    return item


@functools.cache
def _validator(document_id: int, reference: str) -> Any:
    return jsonschema_rs.validator_for(
        {"$ref": reference, "components": _DOCUMENTS[document_id]["components"]}
    )


_DOCUMENTS: dict[int, dict[str, Any]] = {}


def _validate(document: dict[str, Any], reference: str, body: Any, method: str, path: str
              ) -> None:
    _DOCUMENTS[id(document)] = document
    errors = list(_validator(id(document), reference).iter_errors(body))
    assert not errors, (
        f"{method.upper()} {path}: the body breaks {reference}: "
        + "; ".join(f"{list(e.instance_path)}: {e.message}" for e in errors[:5])
    )
