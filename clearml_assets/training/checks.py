"""Asset check of the model: its main metric reached a configured floor."""


import dagster as dg

from ..datasets.checks import latest_materialization_metadata

METRIC_FLOOR = "main_metric_floor"


def build_model_checks(model_key: dg.AssetKey, *, metric_floor: float = 0.3) -> dg.AssetChecksDefinition:
    """``main_metric_floor``: the latest model's main metric (as recorded at materialization) >= ``metric_floor``.

    Not blocking: a weak model is still registered (and not promoted unless it beats the champion),
    the check just flags it.

    Args:
        model_key: Key of the model asset.
        metric_floor: Smallest acceptable value of the main metric (``main_metric`` in the asset config).
    """

    @dg.asset_check(asset=model_key, name=METRIC_FLOOR,
                    description=f"The model's main metric is at least {metric_floor:g}.")
    def main_metric_floor(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        meta = latest_materialization_metadata(context.instance, model_key)
        value = meta.get("main_metric_value")
        name = meta.get("main_metric", "main metric")
        if not isinstance(value, (int, float)):
            return dg.AssetCheckResult(passed=False, metadata={"reason": "the model has no materialization "
                                                                         "with a main_metric_value yet"})
        return dg.AssetCheckResult(
            passed=bool(value >= metric_floor),
            metadata={"main_metric": name, "value": float(value), "floor": float(metric_floor),
                      "model_id": str(meta.get("model_id", ""))},
            description=f"{name}={value:.4f} {'>=' if value >= metric_floor else '<'} floor {metric_floor:g}")

    return main_metric_floor
