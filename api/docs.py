"""The OpenAPI document at ``/schema`` and a Swagger page whose every asset is served here.

Swagger UI's files come from the ``swagger-ui-py`` package (no CDN): a browser
opening ``/schema/swagger`` talks to this server only.
"""

from __future__ import annotations

from pathlib import Path

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


def tighten_schema(app: Litestar) -> None:
    """Say in the document what the request bodies enforce and Litestar does not write.

    Bodies that refuse unknown fields get ``additionalProperties: false``; fields
    that need another (``UpdateMeRequest.password`` needs ``currentPassword``)
    get ``dependentRequired``. Schema-driven clients and fuzzers then generate
    what the API really accepts.
    """
    components = app.openapi_schema.components.schemas or {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            parameter = handler.parsed_fn_signature.parameters.get("data")
            body = getattr(parameter, "annotation", None)
            config = getattr(body, "__struct_config__", None)
            schema = components.get(getattr(body, "__name__", ""))
            if config is None or schema is None:
                continue
            if config.forbid_unknown_fields:
                schema.additional_properties = False
            dependent = getattr(body, "dependent_required", None)
            if dependent:
                schema.dependent_required = dependent
