"""A user's own asset trained as a ClearML task through ``PipesClearMLClient``.

Try it against the embedded server (no ClearML deployment needed)::

    clearml-assets local-server &                       # or any ClearML server + credentials in the env
    clearml-agent daemon --queue cpu --create-queue &    # optional: only for execution "queue"
    dagster dev -f examples/pipes_clearml/definitions.py

Set ``queue`` in the launchpad to run on the agent; leave it empty to run in a local subprocess.
"""

from pathlib import Path

import dagster as dg
from pydantic import Field

from clearml_assets.pipes import PipesClearMLClient
from clearml_assets.resource import ClearMLResource

SCRIPT = Path(__file__).with_name("train_script.py")


class ToyTrainingConfig(dg.Config):
    """Run settings of the example."""

    queue: str = Field(default="", description="ClearML queue served by an agent; empty = run locally.")
    lr: float = Field(default=0.1, description="Learning rate handed to the script as a Pipes extra.")
    epochs: int = Field(default=3, ge=1, description="Epochs of the toy loop.")


@dg.asset(check_specs=[dg.AssetCheckSpec("loss_below_one", asset="toy_model")], kinds={"clearml"})
def toy_model(context: dg.AssetExecutionContext, config: ToyTrainingConfig, clearml: ClearMLResource):
    """A toy training run as a ClearML task; its metadata and check come back through Pipes."""
    return PipesClearMLClient(clearml).run(
        context=context, script=SCRIPT, queue=config.queue or None, project="pipes_example",
        extras={"lr": config.lr, "epochs": config.epochs}).get_results()


defs = dg.Definitions(assets=[toy_model], resources={"clearml": ClearMLResource.from_env()})
