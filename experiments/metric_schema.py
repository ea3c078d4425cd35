"""PostHog's ExperimentMetric schema, checked without pydantic.

A compact, dependency-free check: errors are reported as `{loc, type, msg}` entries (never echoing
input), like PostHog's pydantic-based validation. Used for inline experiment metrics, saved metrics,
the results definitions and the exposure config's event and action nodes.
"""

from typing import Any

from rest_framework.exceptions import ValidationError

from experiments.models import LEGACY_METRIC_KINDS

MAX_REPORTED_METRIC_ERRORS = 15
METRICS_NOT_A_LIST = "Metrics must be a list"
EVENTS_NODE_ID_HINT = (
    "EventsNode does not accept an 'id' field. "
    "To reference an event, use {'kind': 'EventsNode', 'event': '<event_name>'} (omit 'id'). "
    "To reference an action, switch to {'kind': 'ActionsNode', 'id': <integer_action_id>} (omit 'event')."
)

MetricErrors = list[dict[str, Any]]
NODE_MODELS = {
    "EventsNode": "EventsNode",
    "ActionsNode": "ActionsNode",
    "ExperimentDataWarehouseNode": "ExperimentDataWarehouseNode",
}
METRIC_TYPE_MODELS = {
    "mean": "ExperimentMeanMetric",
    "funnel": "ExperimentFunnelMetric",
    "ratio": "ExperimentRatioMetric",
    "retention": "ExperimentRetentionMetric",
}
RETENTION_UNITS = ("hour", "day", "week", "month")
THRESHOLD_MATHS = (None, "sum", "total")


def error(loc: tuple, type_: str, msg: str) -> dict[str, Any]:
    return {"loc": loc, "type": type_, "msg": msg}


def check_properties(node: dict, loc: tuple) -> MetricErrors:
    if "properties" in node and node["properties"] is not None and not isinstance(node["properties"], list):
        return [error((*loc, "properties"), "list_type", "Input should be a valid list")]
    errors = []
    for index, prop in enumerate(node.get("properties") or []):
        if not isinstance(prop, dict):
            errors.append(
                error((*loc, "properties", index), "model_type", "Input should be a valid dictionary")
            )
    return errors


def check_optional_string(node: dict, field: str, loc: tuple) -> MetricErrors:
    if field in node and node[field] is not None and not isinstance(node[field], str):
        return [error((*loc, field), "string_type", "Input should be a valid string")]
    return []


def check_events_node(node: dict, loc: tuple) -> MetricErrors:
    errors = check_properties(node, loc)
    errors += check_optional_string(node, "event", loc)
    errors += check_optional_string(node, "math", loc)
    errors += check_optional_string(node, "math_property", loc)
    if "id" in node:
        errors.append(error((*loc, "id"), "extra_forbidden", "Extra inputs are not permitted"))
    return errors


def check_actions_node(node: dict, loc: tuple) -> MetricErrors:
    errors = check_properties(node, loc)
    action_id = node.get("id")
    if action_id is None:
        errors.append(error((*loc, "id"), "missing", "Field required"))
    elif isinstance(action_id, bool) or not isinstance(action_id, int | float | str):
        errors.append(error((*loc, "id"), "int_type", "Input should be a valid integer"))
    errors += check_optional_string(node, "math", loc)
    return errors


def check_warehouse_node(node: dict, loc: tuple) -> MetricErrors:
    errors = check_properties(node, loc)
    for field in ("table_name", "timestamp_field", "data_warehouse_join_key", "events_join_key"):
        if not isinstance(node.get(field), str):
            kind = "missing" if field not in node else "string_type"
            errors.append(
                error(
                    (*loc, field),
                    kind,
                    "Field required" if kind == "missing" else "Input should be a valid string",
                )
            )
    return errors


def check_event_exposure_config(node: dict, loc: tuple) -> MetricErrors:
    errors = check_properties(node, loc)
    event = node.get("event")
    if not isinstance(event, str) or not event.strip():
        errors.append(
            error(
                (*loc, "event"), "missing" if "event" not in node else "string_too_short", "Event is required"
            )
        )
    return errors


def check_node(node: Any, loc: tuple, allowed: tuple[str, ...]) -> MetricErrors:
    if not isinstance(node, dict):
        return [error(loc, "model_type", "Input should be a valid dictionary")]
    kind = node.get("kind")
    if kind not in allowed:
        expected = ", ".join(f"'{item}'" for item in allowed)
        return [
            error(
                (*loc, "kind"),
                "union_tag_invalid",
                f"Input tag does not match any of the expected tags: {expected}",
            )
        ]
    node_loc = (*loc, NODE_MODELS[kind])
    if kind == "EventsNode":
        return check_events_node(node, node_loc)
    if kind == "ActionsNode":
        return check_actions_node(node, node_loc)
    return check_warehouse_node(node, node_loc)


def check_required_node(metric: dict, field: str, loc: tuple, allowed: tuple[str, ...]) -> MetricErrors:
    if field not in metric or metric[field] is None:
        return [error((*loc, field), "missing", "Field required")]
    return check_node(metric[field], (*loc, field), allowed)


def check_metric_schema(metric: dict) -> MetricErrors:
    metric_type = metric.get("metric_type")
    if not isinstance(metric_type, str) or metric_type not in METRIC_TYPE_MODELS:
        return [
            error(
                ("metric_type",),
                "union_tag_invalid",
                "Input tag does not match any of the expected tags: 'mean', 'funnel', 'ratio', 'retention'",
            )
        ]
    loc: tuple = (METRIC_TYPE_MODELS[metric_type],)
    errors = check_optional_string(metric, "uuid", loc) + check_optional_string(metric, "name", loc)
    all_nodes = ("EventsNode", "ActionsNode", "ExperimentDataWarehouseNode")
    event_nodes = ("EventsNode", "ActionsNode")
    if metric_type == "mean":
        errors += check_required_node(metric, "source", loc, all_nodes)
        for field in ("threshold", "lower_bound_percentile", "upper_bound_percentile"):
            value = metric.get(field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                errors.append(error((*loc, field), "float_type", "Input should be a valid number"))
    elif metric_type == "funnel":
        series = metric.get("series")
        if not isinstance(series, list):
            errors.append(
                error(
                    (*loc, "series"),
                    "missing" if series is None else "list_type",
                    "Field required" if series is None else "Input should be a valid list",
                )
            )
        else:
            for index, step in enumerate(series):
                errors += check_node(step, (*loc, "series", index), all_nodes)
    elif metric_type == "ratio":
        errors += check_required_node(metric, "numerator", loc, all_nodes)
        errors += check_required_node(metric, "denominator", loc, all_nodes)
    else:
        errors += check_required_node(metric, "start_event", loc, event_nodes)
        errors += check_required_node(metric, "completion_event", loc, event_nodes)
        for field in ("retention_window_start", "retention_window_end"):
            value = metric.get(field)
            if not isinstance(value, int) or isinstance(value, bool):
                errors.append(
                    error(
                        (*loc, field),
                        "missing" if field not in metric else "int_type",
                        "Field required" if field not in metric else "Input should be a valid integer",
                    )
                )
        if metric.get("retention_window_unit") not in RETENTION_UNITS:
            errors.append(
                error(
                    (*loc, "retention_window_unit"),
                    "enum",
                    f"Input should be {', '.join(repr(unit) for unit in RETENTION_UNITS)}",
                )
            )
        if not isinstance(metric.get("start_handling"), str):
            errors.append(error((*loc, "start_handling"), "missing", "Field required"))
    return errors


def validate_metrics(metrics: Any) -> None:
    """Each metric must be an `ExperimentMetric` of a known `metric_type` with its required nodes."""
    if metrics is None:
        return
    if not isinstance(metrics, list):
        raise ValidationError(METRICS_NOT_A_LIST)
    for index, metric in enumerate(metrics):
        if not isinstance(metric, dict):
            raise ValidationError(f"Invalid metric at index {index}: must be a dict")
        kind = metric.get("kind")
        if kind in LEGACY_METRIC_KINDS:
            raise ValidationError(
                f"Invalid metric at index {index}: legacy metric kind '{kind}' is no longer supported for new experiments. "
                "Use 'ExperimentMetric' instead."
            )
        if kind != "ExperimentMetric":
            raise ValidationError(f"Invalid metric at index {index}: metric kind must be 'ExperimentMetric'")
        errors = check_metric_schema(metric)
        if errors:
            hint = EVENTS_NODE_ID_HINT if any(item["type"] == "extra_forbidden" for item in errors) else ""
            if len(errors) > MAX_REPORTED_METRIC_ERRORS:
                extra = len(errors) - MAX_REPORTED_METRIC_ERRORS
                errors = [*errors[:MAX_REPORTED_METRIC_ERRORS], {"truncated": f"...{extra} more"}]
            suffix = f" {hint}" if hint else ""
            raise ValidationError(f"Invalid metric at index {index}: {errors}.{suffix}")
        if metric["metric_type"] == "funnel" and not metric["series"]:
            raise ValidationError(
                f"Invalid metric at index {index}: funnel metrics require at least one step. "
                "The experiment exposure event is added as the initial step automatically."
            )
        if metric["metric_type"] == "mean" and metric.get("threshold") is not None:
            validate_mean_threshold(metric, index)


def validate_mean_threshold(metric: dict, index: int) -> None:
    source = metric.get("source") or {}
    if source.get("math") not in THRESHOLD_MATHS:
        raise ValidationError(
            f"Invalid metric at index {index}: a threshold is only supported for sum or count (total) math types."
        )
    if metric["threshold"] <= 0:
        raise ValidationError(f"Invalid metric at index {index}: threshold must be a positive number.")
    if metric.get("lower_bound_percentile") is not None or metric.get("upper_bound_percentile") is not None:
        raise ValidationError(
            f"Invalid metric at index {index}: a threshold cannot be combined with outlier handling (winsorization)."
        )
