"""Champion / challenger on real models registered on the local server with the ClearML SDK."""

from __future__ import annotations

import json

import pytest

from clearml_assets.training.registry import (
    CHAMPION_TAG,
    decide_promotion,
    find_champions,
    find_project_id,
    get_model,
    promote_model,
)

from conftest import run_sdk_script, sdk_env


PROJECT = "registry_test"


def register_models(env, cwd, metrics: dict[str, float]) -> dict[str, str]:
    """One real output model per name (tiny weights file, uploaded), with its mAP50-95 in metadata."""
    out = run_sdk_script(f"""
        import json
        from clearml import OutputModel, Task
        task = Task.init(project_name={PROJECT!r}, task_name="fake trainings", reuse_last_task_id=False,
                         output_uri=True, auto_connect_frameworks=False)
        ids = {{}}
        for name, value in {metrics!r}.items():
            with open(name + ".pt", "wb") as f:
                f.write(b"w" * 1000)
            model = OutputModel(task=task, name=name, framework="PyTorch", tags=["dagster"],
                                label_enumeration={{"circle": 0}})
            model.update_weights(weights_filename=name + ".pt", auto_delete_file=False)
            model.set_metadata("mAP50-95", str(value), v_type="float")
            ids[name] = model.id
        task.flush(wait_for_uploads=True)
        task.close()
        print("JSON", json.dumps(ids))
    """, env, timeout=120, cwd=cwd)
    return json.loads(out.stdout.split("JSON ", 1)[1])


def champions_seen_by_sdk(env, cwd) -> list[str]:
    out = run_sdk_script(f"""
        import json
        from clearml import Model
        print("JSON", json.dumps([m.id for m in Model.query_models(project_name={PROJECT!r}, tags=["champion"])]))
    """, env, timeout=60, cwd=cwd)
    return json.loads(out.stdout.split("JSON ", 1)[1])


@pytest.mark.timeout(300)
def test_better_model_takes_the_tag_worse_one_does_not(clearml_server, tmp_path):
    from clearml_assets.client import ClearMLClient

    info = clearml_server.info
    env = sdk_env(info, tmp_path / "home")
    ids = register_models(env, tmp_path, {"first": 0.5, "better": 0.7, "worse": 0.4})
    client = ClearMLClient(info.api_host, info.access_key, info.secret_key, files_host=info.files_host,
                           web_host=info.web_host)
    project_id = find_project_id(client, PROJECT)
    assert project_id and find_champions(client, project_id) == []
    assert find_project_id(client, PROJECT + "_missing") is None

    first = get_model(client, ids["first"])
    assert first.metric("mAP50-95") == pytest.approx(0.5)
    decision = decide_promotion(first.metric("mAP50-95"), None, "mAP50-95")
    assert decision.promote and decision.champion_value is None
    assert promote_model(client, first.id, project_id) == []
    assert [c.id for c in find_champions(client, project_id)] == [first.id]

    better = get_model(client, ids["better"])
    decision = decide_promotion(better.metric("mAP50-95"), find_champions(client, project_id)[0], "mAP50-95")
    assert decision.promote and decision.champion_value == pytest.approx(0.5)
    assert decision.champion_model_id == first.id and "beats" in decision.reason
    assert promote_model(client, better.id, project_id) == [first.id]
    assert [c.id for c in find_champions(client, project_id)] == [better.id]
    assert get_model(client, first.id).tags == ("dagster",)  # other tags survive the move
    assert champions_seen_by_sdk(env, tmp_path) == [better.id]

    worse = get_model(client, ids["worse"])
    champion = find_champions(client, project_id)[0]
    decision = decide_promotion(worse.metric("mAP50-95"), champion, "mAP50-95")
    assert not decision.promote and "does not beat" in decision.reason
    assert decision.challenger_value == pytest.approx(0.4) and decision.champion_value == pytest.approx(0.7)
    assert [c.id for c in find_champions(client, project_id)] == [better.id]
    assert CHAMPION_TAG not in get_model(client, worse.id).tags

    # Lower-is-better metrics and a minimum margin.
    assert decide_promotion(0.4, champion, "mAP50-95", rule="less").promote
    assert not decide_promotion(0.72, champion, "mAP50-95", min_delta=0.05).promote
    assert decide_promotion(0.76, champion, "mAP50-95", min_delta=0.05).promote
    assert not decide_promotion(0.9, champion, "mAP50-95", rule="less").promote
