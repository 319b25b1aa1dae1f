"""The external side: runs as a ClearML task (on an agent, or locally) and talks to Dagster via Pipes.

Needs only ``clearml``, ``dagster-pipes`` and ``clearml_assets`` where it runs.
"""

import random

from clearml_assets.pipes import open_clearml_pipes

with open_clearml_pipes() as pipes:
    lr = float(pipes.extras.get("lr", 0.1))
    loss = 1.0
    for epoch in range(1, int(pipes.extras.get("epochs", 3)) + 1):
        loss *= 1 - lr * random.random()
        pipes.log.info(f"epoch {epoch}: loss={loss:.4f}")  # appears in the Dagster run log while it runs
    pipes.report_asset_materialization(metadata={"final_loss": loss, "lr": lr})
    pipes.report_asset_check(check_name="loss_below_one", passed=loss < 1.0, metadata={"loss": loss})
