"""The only Dagster entry point: ``workspace.yaml`` loads ``defs`` from here."""

from headwater.settings import get_settings
from orchestration.assets import build_definitions

defs = build_definitions(get_settings())
