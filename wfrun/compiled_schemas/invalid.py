"""What the generated validators raise, in place of fastjsonschema's own exceptions."""

from __future__ import annotations

from typing import Any


class JsonSchemaValueException(ValueError):
    """The document does not match the schema; `name` and `rule` say roughly where and why
    (only for debugging: users get jsonschema's explained errors)."""

    def __init__(
        self,
        message: str,
        value: Any = None,
        name: str | None = None,
        definition: Any = None,
        rule: str | None = None,
    ) -> None:
        super().__init__(message)
        self.name = name
        self.rule = rule


# Raised by fastjsonschema's code only when compiled with fast_fail=False, which wfrun is not.
JsonSchemaValuesException = JsonSchemaValueException
