"""The components without ``dg``: the same assets as ``build_definitions`` (one implementation), their attributes as
run-config defaults, a scaffolded ``defs.yaml`` whose whole commented example is valid, an unknown account refused
when the definitions load, and every attribute described in the schema ``dg`` and the UI's docs tab show."""

from pathlib import Path

import dagster as dg
import pytest
import yaml

from clearml_assets import ClearMLArchivesComponent, ClearMLDatasetsComponent, ClearMLYoloModelComponent
from clearml_assets.components import shared_clearml_resource
from clearml_assets.definitions import build_definitions
from clearml_assets.errors import ClearMLConfigError

COMPONENTS = (ClearMLArchivesComponent, ClearMLDatasetsComponent, ClearMLYoloModelComponent)


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    for name in [n for n in __import__("os").environ if n.startswith("CLEARML_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CLEARML_ASSETS_HOME", str(tmp_path / "home"))


def _load(cls, **attributes) -> dg.Definitions:
    return cls.from_attributes_dict(attributes={"account": "local", **attributes}).build_defs(None)


def _config_default(defs: dg.Definitions, key: str, field: str):
    assets_def = next(a for a in defs.assets if dg.AssetKey.from_user_string(key) in a.keys)
    return assets_def.op.config_schema.as_field().config_type.fields[field].default_value


def test_components_build_what_build_definitions_builds():
    python = build_definitions().resolve_asset_graph()
    merged = dg.Definitions.merge(*(_load(cls) for cls in COMPONENTS))
    components = merged.resolve_asset_graph()
    assert set(components.get_all_asset_keys()) == set(python.get_all_asset_keys())
    for key in components.get_all_asset_keys():
        a, b = components.get(key), python.get(key)
        assert (a.group_name, a.partitions_def, a.description, a.kinds) == \
            (b.group_name, b.partitions_def, b.description, b.kinds), key
    assert components.asset_check_keys == python.asset_check_keys
    python_defs = build_definitions()
    assert {s.name for s in merged.sensors} == {s.name for s in python_defs.sensors}
    assert {j.name for j in merged.jobs} == {j.name for j in python_defs.jobs}
    # every component binds the one resource, so Dagster merges them
    assert merged.resources["clearml"] is shared_clearml_resource()


def test_attributes_become_the_assets_run_config_defaults(tmp_path):
    archives = _load(ClearMLArchivesComponent, export_root=str(tmp_path / "x"), archive_format="tar.xz",
                     project_archive_cron=None, projects=["team/yolo"])
    assert _config_default(archives, "local/clearml_task_archive", "archive_format") == "tar.xz"
    assert _config_default(archives, "local/clearml_project_archive", "export_root") == str(tmp_path / "x")
    assert not archives.schedules
    model = _load(ClearMLYoloModelComponent, execution="queue", queue="gpu", epochs=50, device=0,
                  retraining_cron="0 3 * * 0")
    assert [_config_default(model, "training/shapes_yolo", f) for f in ("execution", "queue", "epochs", "device")] \
        == ["queue", "gpu", 50, "0"]
    assert [s.cron_schedule for s in model.schedules] == ["0 3 * * 0"]
    datasets = _load(ClearMLDatasetsComponent, source_folder="/data/shapes", demo=False, key_prefix=["vision"])
    assert _config_default(datasets, "vision/shapes_raw", "source_folder") == "/data/shapes"
    assert _config_default(datasets, "vision/shapes_raw", "demo") is False


def test_an_unknown_account_fails_when_the_definitions_load(monkeypatch):
    with pytest.raises(ClearMLConfigError, match="'personal' is not configured.*CLEARML_KEY_PERSONAL"):
        _load(ClearMLArchivesComponent, account="personal")
    with pytest.raises(ClearMLConfigError, match="Account names are lower case.*use 'local'"):
        _load(ClearMLYoloModelComponent, account="Local")
    monkeypatch.setenv("CLEARML_KEY_PERSONAL", "k")
    monkeypatch.setenv("CLEARML_SECRET_PERSONAL", "s")
    keys = _load(ClearMLArchivesComponent, account="personal").resolve_asset_graph().get_all_asset_keys()
    assert dg.AssetKey(["personal", "clearml_task_archive"]) in keys


@pytest.mark.parametrize("cls", COMPONENTS, ids=lambda c: c.__name__)
def test_scaffolded_defs_yaml_and_its_whole_commented_example_are_valid(cls, tmp_path):
    from dagster.components.component_scaffolding import scaffold_object

    scaffold_object(tmp_path / "defs", f"clearml_assets.{cls.__name__}", '{"account": "local"}', "yaml", tmp_path)
    text = (tmp_path / "defs" / "defs.yaml").read_text()
    data = yaml.safe_load(text)
    assert data == {"type": f"clearml_assets.{cls.__name__}", "attributes": {"account": "local"}}
    example = "\n".join(line.replace("  # ", "  ", 1) if line.startswith("  # ") else line
                        for line in text.splitlines())
    attributes = yaml.safe_load(example.replace("{{ context.project_root }}", str(tmp_path)))["attributes"]
    assert len(attributes) > 5
    assert cls.from_attributes_dict(attributes=attributes).build_defs(None).assets


@pytest.mark.parametrize("cls", COMPONENTS, ids=lambda c: c.__name__)
def test_every_attribute_is_described_in_the_component_schema(cls):
    properties = cls.get_model_cls().model_json_schema()["properties"]
    assert set(properties) == set(cls.model_fields)
    assert [name for name, spec in properties.items() if not spec.get("description")] == []
    assert cls.get_description().startswith(cls.__doc__.split("\n")[0])


def test_the_readme_shows_what_the_scaffolder_writes(tmp_path):
    from dagster.components.component_scaffolding import scaffold_object

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    shown = readme.split("type: clearml_assets.ClearMLArchivesComponent\n", 1)[1].split("```", 1)[0]
    scaffold_object(tmp_path / "a", "clearml_assets.ClearMLArchivesComponent", '{"account": "local"}', "yaml", tmp_path)
    written = (tmp_path / "a" / "defs.yaml").read_text()
    assert [line for line in shown.splitlines() if line.strip()] and all(
        line in written.splitlines() for line in shown.splitlines() if line.strip())
