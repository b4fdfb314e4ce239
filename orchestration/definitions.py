"""The one Definitions object: every asset, check, job, schedule, sensor and resource."""

from __future__ import annotations

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from assets import attributes, catalog, collections, embeddings, evaluation, generation
from orchestration.jobs import catalog_job, collections_job, evaluation_job, generation_job, nightly_collections_schedule, pipeline_job
from orchestration.profiles import Profile, load_profile, prepare_home
from orchestration.resources import resources_for
from orchestration.sensors import catalog_inbox_sensor, generator_registry_sensor

ASSET_MODULES = [catalog, embeddings, attributes, collections, generation, evaluation]


def build_definitions(profile: Profile | None = None) -> Definitions:
    profile = profile or load_profile()
    prepare_home(profile)
    return Definitions(
        assets=load_assets_from_modules(ASSET_MODULES),
        asset_checks=load_asset_checks_from_modules(ASSET_MODULES),
        jobs=[catalog_job, pipeline_job, collections_job, generation_job, evaluation_job],
        schedules=[nightly_collections_schedule],
        sensors=[catalog_inbox_sensor, generator_registry_sensor],
        resources=resources_for(profile),
    )


defs = build_definitions()
