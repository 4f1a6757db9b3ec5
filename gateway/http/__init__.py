"""The aiohttp adapter: the route table, middlewares, request schemas, views, and one module of
handlers per resource. Each handler parses its request, makes one call into `gateway.core`, and
renders the result; no SQL and no business rules live here."""
