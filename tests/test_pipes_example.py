"""The documented example (examples/pipes_clearml) works as written: a user's asset runs its script as a
ClearML task and gets metadata and a check back."""

import importlib.util
from pathlib import Path

import dagster as dg
import pytest

from test_pipes_clearml import world  # noqa: F401  (module fixture)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pipes_clearml" / "definitions.py"


@pytest.mark.timeout(300)
def test_example_asset_runs_its_script_as_a_clearml_task(world):  # noqa: F811
    spec = importlib.util.spec_from_file_location("pipes_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = dg.materialize([module.toy_model], resources={"clearml": world.resource},
                            run_config={"ops": {"toy_model": {"config": {"epochs": 2, "lr": 0.2}}}})
    (mat,) = result.asset_materializations_for_node("toy_model")
    assert mat.metadata["lr"].value == 0.2 and 0 < mat.metadata["final_loss"].value < 1
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "loss_below_one" and check.passed
    (doc,) = world.client.session.call("tasks.get_all", id=[mat.metadata["clearml_task_id"].value])["tasks"]
    assert doc["status"] == "completed"
