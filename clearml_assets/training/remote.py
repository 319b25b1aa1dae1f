"""Entry point of the training task: what a ClearML agent (or the local runner) executes.

The task's script is :data:`ENTRY_SCRIPT`; it needs ``clearml_assets`` installed where it runs (on a
GPU machine: ``pip install clearml_assets`` in the agent's environment).
"""

from __future__ import annotations

ENTRY_POINT = "train_yolo_task.py"
ENTRY_SCRIPT = "from clearml_assets.training.remote import main\n\nmain()\n"
REQUEST_KEY = "training_request"


def main() -> None:
    """Attach to the task, read the request from the Pipes extras, train, answer with the result."""
    from ..pipes.protocol import current_task, open_clearml_pipes
    from .records import TrainingRequest
    from .yolo import prepare_fast_exit, train_yolo

    task = current_task()
    with open_clearml_pipes(task) as pipes:
        request = TrainingRequest.from_dict(pipes.extras[REQUEST_KEY])
        result = train_yolo(request, task, progress=pipes.log.info)
        pipes.report_custom_message(result.to_dict())
    prepare_fast_exit()
