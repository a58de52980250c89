"""Regenerate the schema validators compiled into wfrun, in wfrun/compiled_schemas/.

    python scripts/compile_schemas.py            # rewrite them from schemas/
    python scripts/compile_schemas.py --check    # exit 1 if they are out of date

fastjsonschema turns a JSON Schema into plain Python code; wfrun ships that code, so deciding
that a workflow is valid costs neither jsonschema's import (~60 ms) nor a compilation at each
start. fastjsonschema is needed here only (a development dependency): the generated modules
import nothing of it, their exception comes from wfrun.compiled_schemas. jsonschema stays the
one that explains an invalid file. tests/test_compiled_schemas.py fails while the committed
modules differ from what this script writes, so they cannot drift from the schema.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wfrun.schemas import agents_file_schema, workflow_schema  # noqa: E402

PACKAGE = ROOT / "wfrun" / "compiled_schemas"

# Generated module -> (what it is compiled from, for its header; the schema).
TARGETS: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "workflow.py": ("schemas/workflow.schema.json", workflow_schema),
    "agents_file.py": (
        "the `agents` property of schemas/workflow.schema.json",
        agents_file_schema,
    ),
}

FASTJSONSCHEMA_IMPORT = (
    "from fastjsonschema import JsonSchemaValueException, JsonSchemaValuesException\n"
)
OWN_IMPORT = (
    "from wfrun.compiled_schemas.invalid import JsonSchemaValueException, "
    "JsonSchemaValuesException\n"
)
DECIMAL_IMPORT = "from decimal import Decimal\n"
DECIMAL_STAND_IN = "class Decimal:  # stand-in: see scripts/compile_schemas.py\n    pass\n"

# Keywords that annotate and never constrain: left out, they would only be copied into every
# exception the generated code can raise (a 125 kB module instead of a 40 kB one).
ANNOTATIONS = frozenset({"description", "title", "$comment", "examples"})
SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "items")
SCHEMA_VALUES = (
    "items",
    "additionalItems",
    "additionalProperties",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
    "not",
)


def without_annotations(schema: Any) -> Any:
    """The schema without its annotations; property names such as `description` are kept."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ANNOTATIONS:
            continue
        if key in SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: without_annotations(sub) for name, sub in value.items()}
        elif key in SCHEMA_LISTS and isinstance(value, list):
            out[key] = [without_annotations(sub) for sub in value]
        elif key in SCHEMA_VALUES:
            out[key] = without_annotations(value)
        else:
            out[key] = value
    return out


def without_definitions(code: str) -> str:
    """Every `definition={...}` argument of the generated exceptions written as None: wfrun
    never reads it (jsonschema explains an invalid file), and the copies of the schema in them
    were most of the module, unmarshalled at every start (about 10 ms)."""
    import ast

    lines = code.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    spans: list[tuple[int, int]] = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.keyword) and node.arg == "definition":
            value = node.value
            assert value.end_lineno is not None and value.end_col_offset is not None
            start = starts[value.lineno - 1] + value.col_offset
            end = starts[value.end_lineno - 1] + value.end_col_offset
            spans.append((start, end))
    for start, end in sorted(spans, reverse=True):
        code = code[:start] + "None" + code[end:]
    return code


def generate(module: str) -> str:
    """The text of the generated module `module` (e.g. "workflow.py")."""
    import fastjsonschema

    origin, schema = TARGETS[module]
    code: str = fastjsonschema.compile_to_code(without_annotations(schema()))
    root = re.search(r"^def (validate\w*)\(", code, re.MULTILINE)
    if root is None or code.count(FASTJSONSCHEMA_IMPORT) != 1:
        raise SystemExit(
            f"fastjsonschema {fastjsonschema.VERSION} writes code this script "
            "does not know: check its output and update the script"
        )
    code = code.replace(FASTJSONSCHEMA_IMPORT, OWN_IMPORT)
    # Documents from YAML hold int and float, never decimal.Decimal: a stand-in class that no
    # value is an instance of spares every start the import of decimal (~2 ms). A Decimal that
    # did turn up would only be sent on to jsonschema, never wrongly accepted.
    code = code.replace(DECIMAL_IMPORT, DECIMAL_STAND_IN)
    code = without_definitions(code)
    header = (
        f"# Generated by scripts/compile_schemas.py from {origin}\n"
        f"# with fastjsonschema {fastjsonschema.VERSION}. Do not edit: change the schema and\n"
        "# run the script (tests/test_compiled_schemas.py fails until they agree).\n"
    )
    trailer = (
        "\n\n# The entry point: raises JsonSchemaValueException for a document it rejects.\n"
        f"check = {root.group(1)}\n"
    )
    return header + code.rstrip("\n") + "\n" + trailer


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--check", action="store_true", help="only report modules that are stale")
    args = p.parse_args()
    stale = []
    for module in TARGETS:
        path = PACKAGE / module
        text = generate(module)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if args.check else 'written'}: {path.relative_to(ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
