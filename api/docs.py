"""The OpenAPI document at ``/schema`` and a Swagger page whose every asset is served here.

Swagger UI's files come from the ``swagger-ui-py`` package (no CDN): a browser
opening ``/schema/swagger`` talks to this server only.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import swagger_ui  # type: ignore[import-untyped]
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

OPENAPI_PATH = "/schema"
ASSETS_PATH = "/schema/assets"
ASSETS_DIR = Path(swagger_ui.__file__).resolve().parent / "static"
BEARER_SCHEME = "BearerToken"


def openapi_config(title: str, version: str) -> OpenAPIConfig:
    swagger = SwaggerRenderPlugin(
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
        path="/swagger",
    )
    return OpenAPIConfig(
        title=title,
        version=version,
        path=OPENAPI_PATH,
        use_handler_docstrings=True,
        render_plugins=[
            JsonRenderPlugin(path=["/", "/openapi.json"]),
            YamlRenderPlugin(),
            swagger,
        ],
        components=Components(
            security_schemes={
                BEARER_SCHEME: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="Access token from POST /api/auth/login.",
                )
            }
        ),
        security=[{BEARER_SCHEME: []}],
    )


def assets_router() -> ControllerRouterHandler:
    """Swagger UI's scripts, styles and icon, from the installed package."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[ASSETS_DIR],
        opt={"exclude_from_auth": True},
        include_in_schema=False,
        guards=[],
        name="swagger-assets",
    )


def _structs(node: object, found: dict[str, type]) -> None:
    """Every Struct class reachable from a ``msgspec.inspect`` type node, by name."""
    if isinstance(node, msgspec.inspect.StructType):
        if node.cls.__name__ in found:
            return
        found[node.cls.__name__] = node.cls
    if isinstance(node, msgspec.Struct):
        for name in node.__struct_fields__:
            value = getattr(node, name)
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, msgspec.inspect.Type | msgspec.inspect.Field):
                    _structs(item, found)


def tighten_schema(app: Litestar) -> None:
    """Document request bodies exactly as they are decoded.

    Litestar's generated schemas drop constraints of nested and optional types
    (a length inside a list, a minimum on an optional number, the names a mapping
    allows). The decoder is msgspec, so each body type, and every type inside it,
    is documented by msgspec's own JSON Schema, plus what msgspec does not write:
    ``additionalProperties: false`` for bodies that refuse unknown fields and
    ``dependentRequired`` for fields that need another
    (``UpdateMeRequest.password`` needs ``currentPassword``). Schema-driven clients
    and fuzzers then generate what the API really accepts.
    """
    components = app.openapi_schema.components.schemas
    if components is None:
        return
    bodies = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            parameter = handler.parsed_fn_signature.parameters.get("data")
            body = getattr(parameter, "annotation", None)
            if getattr(body, "__struct_config__", None) is not None:
                bodies.append(body)
    if not bodies:
        return
    classes: dict[str, type] = {}
    for info in msgspec.inspect.multi_type_info(bodies):
        _structs(info, classes)
    _, exact = msgspec.json.schema_components(bodies, ref_template="#/components/schemas/{name}")
    for name, schema in exact.items():
        cls = classes.get(name)
        config = getattr(cls, "__struct_config__", None)
        if config is not None and config.forbid_unknown_fields:
            schema["additionalProperties"] = False
        dependent = getattr(cls, "dependent_required", None)
        if dependent:
            schema["dependentRequired"] = dependent
        components[name] = schema
