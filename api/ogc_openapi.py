"""/ogc's own OpenAPI 3.0 document (/req/oas30/oas-definition-1): /ogc only, per-layer items."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

# --- OpenAPI 3.0 of /ogc --------------------------------------------------------------------
from api.ogc_query import MAX_LIMIT
from api.ogc_standard import NON_MVT_TYPES


def openapi30(schema: Any) -> Any:
    """A FastAPI (OpenAPI 3.1 / JSON Schema 2020-12) fragment rewritten as OpenAPI 3.0."""
    if isinstance(schema, list):
        return [openapi30(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: openapi30(v) for k, v in schema.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            out.pop(key)
            if len(rest) == 1 and "$ref" not in rest[0]:
                out.update(rest[0])
            elif len(rest) == 1:
                out["allOf"] = rest
            else:
                out[key] = rest
            out["nullable"] = True
    if out.get("type") == "null":
        out.pop("type")
        out["nullable"] = True
    if isinstance(out.get("type"), list):  # ["string", "null"]
        types = [t for t in out["type"] if t != "null"]
        if len(types) < len(out["type"]):
            out["nullable"] = True
        out["type"] = types[0] if len(types) == 1 else "string"
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("examples"), list):  # a map of named examples in 3.0
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), (int, float)) and not isinstance(out[bound], bool):
            out[plain] = out.pop(bound)
            out[bound] = True
    # JSON Schema keywords OAS 3.0 does not know (and morecantile's misspelt "exemples").
    for key in ("contentMediaType", "contentEncoding", "$schema", "prefixItems",
                "unevaluatedProperties", "dependentSchemas", "exemples", "$defs"):
        out.pop(key, None)
    return out


def ogc_openapi_document(app: FastAPI, prefix: str, title: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the routes under `prefix` only."""
    whole = get_openapi(title=title, version="1.0.0", openapi_version="3.0.3", routes=app.routes,
                        description="公共图层: OGC API - Features (Part 1, Part 3 CQL2) 与 "
                                    "OGC API - Tiles (矢量瓦片, WebMercatorQuad)")
    paths = {path: item for path, item in whole.get("paths", {}).items()
             if path == prefix or path.startswith(prefix + "/")}
    schemas = whole.get("components", {}).get("schemas", {})
    # Only the schemas the /ogc operations reach (staff models stay out).
    used: dict[str, Any] = {}
    pending = _refs(paths)
    while pending:
        name = pending.pop()
        if name in used or name not in schemas:
            continue
        used[name] = schemas[name]
        pending |= _refs(schemas[name])
    # Paths relative to the server /ogc, as clients resolve them from the landing page (GDAL
    # looks up "/collections/{id}/items" to learn a layer's query parameters).
    relative = {path[len(prefix):] or "/": item for path, item in paths.items()}
    relative.update(_collection_items_paths(app, relative))
    doc = {**whole, "servers": [{"url": prefix, "description": "公共图层 OGC API"}],
           "paths": relative, "components": {"schemas": used}}
    return openapi30(copy.deepcopy(doc))


_JSON_TYPES = {"string", "number", "integer", "boolean"}


def _collection_items_paths(app: FastAPI, paths: dict[str, Any]) -> dict[str, Any]:
    """One items path per public layer, declaring each column as a query parameter.

    Part 1 (/req/core/fc-filters) lets a server filter on properties by parameters named after
    them; a client only knows which exist from the API definition, per collection.
    """
    template = copy.deepcopy(paths.get("/collections/{collectionId}/items", {}).get("get"))
    if template is None:
        return {}
    common = [p for p in template.get("parameters", []) if p.get("name") != "collectionId"]
    for parameter in common:
        if parameter.get("name") == "limit":
            parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                   "default": 10}
    out = {}
    for collection in app.state.collection_catalog["collections"].values():
        names = {p.get("name") for p in common}
        own = [{"name": c.name, "in": "query", "required": False,
                "description": f"只返回 {c.name} 等于此值的要素 (equal to)",
                "schema": {"type": c.json_type if c.json_type in _JSON_TYPES else "string"}}
               for c in collection.properties
               if c.type not in NON_MVT_TYPES and c.name not in names]
        operation = {**copy.deepcopy(template), "parameters": [*copy.deepcopy(common), *own],
                     "operationId": f"getFeatures_{collection.id}",
                     "summary": f"{collection.title or collection.id} ({collection.id}) 要素"}
        out[f"/collections/{collection.id}/items"] = {"get": operation}
    return out


def _refs(node: Any) -> set[str]:
    """Names of the component schemas `node` refers to."""
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()
