"""``CLEARML_ASSETS_EXECUTOR``: the Celery executor of a deployment across hosts, and its settings."""

from __future__ import annotations

import dagster as dg
import pytest
import yaml

from clearml_assets.deployment import (BROKER_ENV, EXECUTOR_ENV, VISIBILITY_ENV, celery_settings,
                                       celery_worker_config, deployment_executor)
from clearml_assets.errors import ClearMLConfigError


def test_default_is_dagsters_own_executor():
    assert deployment_executor({}) is None
    assert deployment_executor({EXECUTOR_ENV: "multiprocess"}) is None
    assert deployment_executor({EXECUTOR_ENV: "in_process"}) is dg.in_process_executor


def test_celery_executor_runs_every_job_of_the_code_location(monkeypatch):
    from clearml_assets.definitions import build_definitions

    monkeypatch.setenv(EXECUTOR_ENV, "celery")
    monkeypatch.setenv(BROKER_ENV, "redis://:pw@198.51.100.1:6379/0")
    monkeypatch.setenv(VISIBILITY_ENV, "600")
    defs = build_definitions()
    for job in ("clearml_archive_job_local", "__ASSET_JOB"):
        assert defs.resolve_job_def(job).executor_def.name == "clearml_assets_celery_executor"
    source = celery_settings(600)
    assert source["task_acks_late"] and source["task_reject_on_worker_lost"]
    assert source["broker_transport_options"]["visibility_timeout"] == 600


@pytest.mark.parametrize("env, match", [
    ({EXECUTOR_ENV: "dask"}, "not an executor"),
    ({EXECUTOR_ENV: "celery"}, BROKER_ENV),
    ({EXECUTOR_ENV: "celery", BROKER_ENV: "redis://h/0", VISIBILITY_ENV: "soon"}, "number of seconds"),
])
def test_wrong_settings_are_clear_errors(env, match):
    with pytest.raises(ClearMLConfigError, match=match):
        deployment_executor(env)


def test_worker_config_holds_no_secret_and_the_same_settings():
    config = yaml.safe_load(celery_worker_config(900))["execution"]["config"]
    assert config["broker"] == {"env": BROKER_ENV} and config["backend"] == {"env": BROKER_ENV}
    assert config["config_source"] == celery_settings(900)


def test_a_deployment_module_can_give_every_job_its_own_executor(monkeypatch):
    """docs/deployment.md's Kubernetes recipe: merge the project's definitions with one holding the executor."""
    import dagster as dg

    from clearml_assets.definitions import build_definitions

    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    defs = dg.Definitions.merge(build_definitions(), dg.Definitions(executor=dg.in_process_executor))
    for job in ("clearml_archive_job_local", "__ASSET_JOB"):
        assert defs.resolve_job_def(job).executor_def is dg.in_process_executor
