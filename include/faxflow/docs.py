"""The configuration reference, rendered from the campaign JSON schema so it cannot drift."""

import json

from faxflow.config import campaign_json_schema
from faxflow.engines.builtin.parameters import PhysicsParameters, ProcessingParameters

#: Override sections whose real defaults are the period's values, not null.
PERIOD_DEFAULTS = {"PhysicsOverrides": PhysicsParameters, "ProcessingOverrides": ProcessingParameters}

HEADER = """# Campaign configuration reference

Generated from the campaign JSON schema by `faxflow docs`; do not edit by hand
(`make test` fails when this file is out of date).

A campaign file holds the top-level keys below. Every key of the first table except the
campaign-wide ones (`name`, `description`, `seed_policy`, `seed`, `schedule`, `output_root`,
`variants`, `matrix`) may also be overridden per variant. Nested sections are merged key by key.
"""


def _type(spec) -> str:
    if not isinstance(spec, dict):
        return "any"
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "enum" in spec:
        return " \\| ".join(json.dumps(value) for value in spec["enum"])
    if "const" in spec:
        return json.dumps(spec["const"])
    if "anyOf" in spec or "oneOf" in spec:
        return " \\| ".join(_type(option) for option in spec.get("anyOf") or spec["oneOf"])
    kind = spec.get("type", "any")
    if kind == "array":
        if "prefixItems" in spec:
            return "[" + ", ".join(_type(item) for item in spec["prefixItems"]) + "]"
        return f"list of {_type(spec.get('items', {}))}"
    if kind == "object" and "additionalProperties" in spec:
        return f"mapping to {_type(spec['additionalProperties'])}"
    bounds = [f"{symbol} {spec[key]}" for key, symbol in
              (("exclusiveMinimum", ">"), ("minimum", "≥"), ("exclusiveMaximum", "<"), ("maximum", "≤")) if key in spec]
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def _table(spec: dict, period_model=None) -> list[str]:
    required = set(spec.get("required", []))
    sr1 = period_model.for_period("SR1").model_dump(mode="json") if period_model else {}
    sr0 = period_model.for_period("SR0").model_dump(mode="json") if period_model else {}
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, prop in spec.get("properties", {}).items():
        default = "required" if key in required else json.dumps(prop.get("default")) if "default" in prop else ""
        if key in sr1:
            differs = sr0[key] != sr1[key] and key != "period"
            default = json.dumps(sr1[key]) + (f" (SR0: {json.dumps(sr0[key])})" if differs else "")
        description = prop.get("description", "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{key}` | {_type(prop)} | {default} | {description} |")
    return lines


def render_configuration_reference() -> str:
    schema = campaign_json_schema()
    lines = [HEADER, "## Campaign file (top level)", "", *_table(schema), ""]
    for name, spec in sorted(schema.get("$defs", {}).items()):
        note = "Unset keys take the value of the selected `period` (default SR1)." if name in PERIOD_DEFAULTS else ""
        lines += [f"## {name}", "", (spec.get("description") or "").strip(), note, "",
                  *_table(spec, PERIOD_DEFAULTS.get(name)), ""]
    return "\n".join(lines)
