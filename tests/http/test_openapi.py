"""`/openapi.json` documents every route of the app, from the schemas that validate requests."""

from __future__ import annotations

from gateway.errors import ErrorCode
from gateway.http.keys import ROUTE_ACCESS
from tests.helpers import Api

BODYLESS = {("POST", "/v1/broadcasts/{id}/resend")}


async def test_the_document_names_every_route_of_the_app(api: Api) -> None:
    reply = await api.request("GET", "/openapi.json", auth=False)
    assert reply.status == 200
    document = reply.body
    assert document["openapi"].startswith("3.1")
    app = api.client.server.app
    served = {
        (route.method, route.resource.canonical)
        for route in app[ROUTE_ACCESS]
        if route.method not in ("HEAD",) and route.resource is not None
        # The console's pages are for browsers (decision 0020), not part of the API's document.
        and not route.resource.canonical.startswith("/console")
    }
    documented = {
        (method.upper(), path) for path, operations in document["paths"].items() for method in operations
    }
    assert served == documented


async def test_every_route_that_reads_a_body_documents_it(api: Api) -> None:
    document = (await api.request("GET", "/openapi.json", auth=False)).body
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method in ("post", "put", "patch") and (method.upper(), path) not in BODYLESS:
                assert "requestBody" in operation, (method, path)


async def test_request_schemas_are_the_validating_ones(api: Api) -> None:
    document = (await api.request("GET", "/openapi.json", auth=False)).body
    send = document["components"]["schemas"]["SendRequest"]
    assert send["additionalProperties"] is False
    assert send["required"] == ["to"]
    assert send["properties"]["priority"]["maximum"] == 1000
    poll = document["paths"]["/v1/poll"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert poll == {"$ref": "#/components/schemas/PollRequest"}


async def test_errors_are_documented_with_every_code(api: Api) -> None:
    document = (await api.request("GET", "/openapi.json", auth=False)).body
    error = document["components"]["schemas"]["Error"]["properties"]["error"]
    assert set(error["properties"]["code"]["enum"]) == {code.value for code in ErrorCode}
    server_ops = [
        op for ops in document["paths"].values() for op in ops.values() if "server" in op.get("tags", [])
    ]
    assert server_ops and all(op["security"] == [{"apiKey": []}] for op in server_ops)
