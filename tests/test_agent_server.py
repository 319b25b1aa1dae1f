"""Queues, workers and tasks.enqueue/dequeue of the local server, with the real server's semantics
(clearml-server v1.9.2 bll/queue, bll/workers, task_operations.enqueue_task)."""

from __future__ import annotations

import pytest

from server_api import RawApi


@pytest.fixture
def api(clearml_server) -> RawApi:
    return RawApi(clearml_server.info)


def new_task(api: RawApi, name: str = "queued task", **extra) -> str:
    return api.call("tasks.create", name=name, type="training", **extra)["id"]


def test_enqueue_get_next_task_pops_in_order_once(api):
    queue = api.call("queues.create", name="gpu")["id"]
    tasks = [new_task(api, f"task {i}", system_tags=["development"]) for i in range(3)]
    for t in tasks:
        res = api.call("tasks.enqueue", task=t, queue=queue)
        assert res["queued"] == 1 and res["fields"]["execution.queue"] == queue
    first = api.call("tasks.get_by_id", task=tasks[0])["task"]
    assert first["status"] == "queued" and first["execution"]["queue"] == queue
    assert first["system_tags"] == []  # enqueue pulls 'development'
    assert api.error("tasks.enqueue", task=tasks[0], queue=queue)[0] == 400
    assert [e["task"] for e in api.call("queues.get_by_id", queue=queue)["queue"]["entries"]] == tasks
    assert api.call("queues.move_task_backward", queue=queue, task=tasks[0], count=2)["position"] == 2
    assert api.call("queues.move_task_to_front", queue=queue, task=tasks[0])["position"] == 0
    popped = [api.call("queues.get_next_task", queue=queue).get("entry", {}).get("task") for _ in range(4)]
    assert popped == [*tasks, None]


def test_dequeue_returns_the_task_to_its_status_and_a_deleted_queue_releases_its_tasks(api):
    queue = api.call("queues.create", name="cpu")["id"]
    task = new_task(api)
    api.call("tasks.enqueue", task=task, queue=queue)
    res = api.call("tasks.dequeue", task=task)
    assert res["dequeued"] == 1 and res["removed"] == 1
    assert api.call("tasks.get_by_id", task=task)["task"]["status"] == "created"
    assert api.call("queues.get_num_entries", queue=queue)["num"] == 0
    # a task that is not queued: 1.9.2 refused it (400/101), the newest release leaves it as it is
    assert api.call("tasks.dequeue", task=task) == {"dequeued": 1, "updated": 0}

    api.call("tasks.enqueue", task=task, queue=queue)
    assert api.error("queues.delete", queue=queue)[:2] == (400, 702)
    api.call("queues.delete", queue=queue, force=True)
    assert api.call("tasks.get_by_id", task=task)["task"]["status"] == "created"


def test_an_agent_dequeuing_the_task_it_runs_keeps_its_queue(api):
    """clearml-agent's ``execute`` calls ``tasks.dequeue(new_status=in_progress)`` on the task it pulled; the real
    server's ``dequeue_and_change_status`` keeps ``execution.queue`` (what watches the run reads the queue there)."""
    queue = api.call("queues.create", name="gpu")["id"]
    task = new_task(api)
    api.call("tasks.enqueue", task=task, queue=queue)
    assert api.call("queues.get_next_task", queue=queue)["entry"]["task"] == task
    assert api.call("tasks.dequeue", task=task, new_status="in_progress")["updated"] == 1
    doc = api.call("tasks.get_by_id", task=task)["task"]
    assert doc["status"] == "in_progress" and doc["execution"]["queue"] == queue


def test_enqueue_by_name_creates_the_queue_and_default_queue_exists(api):
    task = new_task(api)
    res = api.call("tasks.enqueue", task=task, queue_name="named", verify_watched_queue=True)
    assert res["queue_watched"] is False
    (queue,) = api.call("queues.get_all", name="^named$")["queues"]
    assert queue["id"] == res["fields"]["execution.queue"]
    default = api.call("queues.get_default")
    assert default["name"] == "default"
    hidden = api.call("queues.create", name="glue", system_tags=["k8s-glue"])["id"]
    assert hidden not in {q["id"] for q in api.call("queues.get_all")["queues"]}
    assert hidden in {q["id"] for q in api.call("queues.get_all", search_hidden=True)["queues"]}


def test_workers_register_report_expire_and_show_on_their_queues(api):
    queue = api.call("queues.create", name="served")["id"]
    assert api.error("workers.register", worker="w0", queues=["nope"])[:2] == (400, 701)
    api.call("workers.register", worker="w1", queues=[queue], timeout=600, tags=["gpu"])
    # timeout 1 and a report 'in the past' is not needed: a registration of 0 s is refused
    assert api.error("workers.register", worker="w2", timeout=-1)[:2] == (400, 1002)
    task = new_task(api, "running on w1")
    api.call("tasks.started", task=task)
    api.call("workers.status_report", worker="w1", timestamp=0, task=task, queue=queue)
    (w,) = [w for w in api.call("workers.get_all", last_seen=100)["workers"] if w["id"] == "w1"]
    assert w["task"]["id"] == task and w["queues"][0]["id"] == queue and w["queues"][0]["name"] == "served"
    assert api.call("tasks.get_by_id", task=task)["task"]["last_worker"] == "w1"
    assert api.call("workers.get_all", tags=["-gpu"])["workers"] == []
    (q,) = [q for q in api.call("queues.get_all_ex", id=[queue])["queues"]]
    assert q["workers"] == [{"name": "w1", "ip": "127.0.0.1", "task": {"id": task, "name": "running on w1"},
                             "key": "worker_local_local-user_w1"}]  # the key: after 1.9.2
    api.call("workers.unregister", worker="w1")
    assert api.call("workers.get_all")["workers"] == []
    api.call("workers.unregister", worker="w1")  # apiserver.workers.auto_unregister: true (the default)


def test_a_worker_that_stops_reporting_expires(api, clearml_server):
    api.call("workers.register", worker="w3", timeout=600)
    # Expiry is the registration timeout after the last report; age the entry instead of sleeping.
    for doc in clearml_server.store.all("workers"):
        doc["expires"] = 0
    assert api.call("workers.get_all")["workers"] == []


def test_a_running_task_nobody_updates_is_stopped_as_non_responsive(api, clearml_server, monkeypatch):
    task = new_task(api, "lost task")
    api.call("tasks.started", task=task)
    fresh = new_task(api, "live task")
    api.call("tasks.started", task=fresh)
    # Its agent was killed two hours ago (the real watchdog's threshold): age it instead of waiting.
    clearml_server.store.get("tasks", task)["last_update"] = "2020-01-01T00:00:00+00:00"
    monkeypatch.setenv("CLEARML_LOCAL_SERVER_NONRESPONSIVE_WATCH_SEC", "0")
    api.call("workers.get_all")
    doc = api.call("tasks.get_by_id", task=task)["task"]
    assert doc["status"] == "stopped" and doc["status_reason"] == "Forced stop (non-responsive)"
    assert api.call("tasks.get_by_id", task=fresh)["task"]["status"] == "in_progress"


def test_the_sdk_enqueues_and_dequeues_through_the_queue_endpoints(api, sdk_runner):
    api.call("queues.create", name="sdk_q")  # the SDK looks the queue up by name (it creates none)
    out = sdk_runner("""
        from clearml import Task
        task = Task.create(project_name="agents", task_name="sdk enqueue", task_type="training")
        res = Task.enqueue(task, queue_name="sdk_q")
        task.reload()
        print("QUEUED", task.id, task.get_status(), task.data.execution.queue)
        Task.dequeue(task)
        task.reload()
        print("DEQUEUED", task.get_status())
    """)
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if line.startswith(("QUEUED", "DEQUEUED")))
    task_id, status, queue_id = lines["QUEUED"].split()
    assert status == "queued"
    (queue,) = api.call("queues.get_all", name="^sdk_q$")["queues"]
    assert queue["id"] == queue_id and queue["entries"] == []  # dequeued again
    assert lines["DEQUEUED"] == "created"
