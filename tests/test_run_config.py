"""Run configuration: defaults set when building (what the components do), entries Dagster would silently ignore
refused by the assets, and run-config files read with errors naming file, line and column."""

import dagster as dg
import pytest

from clearml_assets.errors import ClearMLConfigError
from clearml_assets.run_config import (check_ops_config_keys, config_with_defaults, load_run_config_files,
                                       parse_run_config_json)
from clearml_assets.training.config import ClearMLTrainingConfig


def test_config_with_defaults_changes_defaults_and_keeps_descriptions_and_constraints():
    config = config_with_defaults(ClearMLTrainingConfig, {"execution": "queue", "queue": "gpu", "epochs": 3})
    assert (config().execution, config().queue, config().epochs) == ("queue", "gpu", 3)
    assert config.model_fields["epochs"].description == ClearMLTrainingConfig.model_fields["epochs"].description
    with pytest.raises(ValueError):
        config(epochs=0)  # ge=1 kept
    assert config(epochs=7).epochs == 7
    assert config_with_defaults(ClearMLTrainingConfig, None) is ClearMLTrainingConfig
    with pytest.raises(ClearMLConfigError, match="has no field 'epoch'"):
        config_with_defaults(ClearMLTrainingConfig, {"epoch": 3})
    with pytest.raises(ClearMLConfigError, match="Invalid default"):
        config_with_defaults(ClearMLTrainingConfig, {"execution": "cluster"})


def test_the_launchpad_shows_the_new_default():
    config = config_with_defaults(ClearMLTrainingConfig, {"epochs": 3})

    @dg.asset
    def model(config: config) -> None:  # type: ignore[valid-type]
        ...

    fields = model.op.config_schema.as_field().config_type.fields
    assert fields["epochs"].default_value == 3 and "Training epochs" in fields["epochs"].description


def _job(seen: list):
    @dg.asset(key=["training", "shapes_yolo"])
    def model(context: dg.AssetExecutionContext) -> None:
        check_ops_config_keys(context)
        seen.append(context.run.run_config)

    @dg.asset
    def other(context: dg.AssetExecutionContext) -> None:
        check_ops_config_keys(context)

    return dg.Definitions(assets=[model, other]).resolve_implicit_global_asset_job_def()


@pytest.mark.parametrize("entry", ["training/shapes_yolo", "shapes_yolo", "training.shapes_yolo"])
def test_an_ops_entry_under_the_asset_key_is_refused_naming_the_op(entry):
    seen: list = []
    result = _job(seen).execute_in_process(run_config={"ops": {entry: {"config": {"epochs": 1}}}},
                                           asset_selection=[dg.AssetKey(["training", "shapes_yolo"])],
                                           raise_on_error=False)
    assert not result.success and seen == []
    [failure] = [e.event_specific_data.error for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert f"Run config key ops.'{entry}' names an asset" in failure.message
    assert '{"ops": {"training__shapes_yolo": {"config": {...}}}}' in failure.message


def test_op_names_pass():
    seen: list = []
    result = _job(seen).execute_in_process(run_config={"ops": {"training__shapes_yolo": {}, "other": {}}},
                                           asset_selection=[dg.AssetKey(["training", "shapes_yolo"])])
    assert result.success and len(seen) == 1


def test_run_config_files_merge_like_dagster_and_errors_name_file_line_and_column(tmp_path):
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text("ops:\n  a__b:\n    config: {epochs: 2}\n")
    second.write_text("ops:\n  a__b:\n    config: {epochs: 9, imgsz: 64}\n  c: {}\n")
    assert load_run_config_files([first, second]) == {
        "ops": {"a__b": {"config": {"epochs": 2, "imgsz": 64}}, "c": {}}}
    bad = tmp_path / "bad.yaml"
    bad.write_text("ops:\n  a__b:\n    config:\n      epochs: 2\n     imgsz: 64\n")
    with pytest.raises(ClearMLConfigError, match=r"bad.yaml', line 5, column 6: .*not valid YAML"):
        load_run_config_files([bad])
    (tmp_path / "list.yaml").write_text("- ops\n")
    with pytest.raises(ClearMLConfigError, match="holds a list, not a mapping"):
        load_run_config_files([tmp_path / "list.yaml"])
    with pytest.raises(ClearMLConfigError, match="cannot be read"):
        load_run_config_files([tmp_path / "missing.yaml"])
    with pytest.raises(ClearMLConfigError, match="line 1, column 13"):
        parse_run_config_json('{"ops": {}, }')
