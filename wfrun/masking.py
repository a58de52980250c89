"""Secrets (SPEC §10.7): the values that must never be shown or written, and `--env-file`.

Every secret value of 4 characters or more is replaced by `***` in whatever wfrun shows or
writes. Step output is masked as bytes while it streams, so a value split across two reads is
still caught: the end of a read that could begin a secret is held back until the next.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from wfrun.errors import WfrunError

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary text everywhere


class EnvFileError(WfrunError):
    """An `--env-file` that cannot be read."""


class Masker:
    """Replaces secret values by `***`, in text and in streamed bytes."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        kept = {form for v in values if len(v) >= MIN_SECRET_LENGTH for form in _written_forms(v)}
        # Longest first, so a secret that contains another is masked whole.
        self._texts = sorted(kept, key=len, reverse=True)
        self._bytes = [v.encode() for v in self._texts]
        self._longest = max((len(b) for b in self._bytes), default=0)

    def __bool__(self) -> bool:
        return bool(self._texts)

    def text(self, value: str) -> str:
        for secret in self._texts:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def maybe(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)

    def value(self, value: Any) -> Any:
        """A JSON-like value (an agent's reply) with every string in it masked."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        return value

    def data(self, value: bytes) -> bytes:
        for secret in self._bytes:
            if secret in value:
                value = value.replace(secret, MASK.encode())
        return value

    def stream(self) -> StreamMasker:
        return StreamMasker(self)

    def held_back(self, data: bytes) -> int:
        """How many bytes at the end of `data` could be the start of a secret."""
        for size in range(min(self._longest - 1, len(data)), 0, -1):
            tail = data[-size:]
            if any(secret.startswith(tail) for secret in self._bytes):
                return size
        return 0


def _written_forms(value: str) -> set[str]:
    """The secret, and the forms messages write it in: Python's quoting of a path in a start
    error (`'back\\\\slash'`), a shell-quoted command line (`'it'"'"'s'`), JSON's escapes."""
    import json
    import shlex

    forms = {value, repr(value)[1:-1], shlex.quote(value), json.dumps(value)[1:-1]}
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


class StreamMasker:
    """Masks one stream of bytes that arrives in pieces."""

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        self._carry = b""

    def feed(self, data: bytes) -> bytes:
        masked = self._masker.data(self._carry + data)
        keep = self._masker.held_back(masked)
        if keep:
            self._carry = masked[-keep:]
            return masked[:-keep]
        self._carry = b""
        return masked

    def flush(self) -> bytes:
        rest, self._carry = self._carry, b""
        return self._masker.data(rest)


def secret_values(names: Iterable[str], env: Mapping[str, str]) -> list[str]:
    return [env[name] for name in names if name in env]


def missing_secrets(names: Iterable[str], env: Mapping[str, str]) -> list[str]:
    return [name for name in names if name not in env]


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The variables of a dotenv file (`NAME=value`, `export NAME=value`, quotes, comments)."""
    file = Path(path)
    if not file.exists():
        raise EnvFileError(f"{path}: no such file (--env-file)")
    if file.is_dir():
        raise EnvFileError(f"{path}: is a directory, not a dotenv file (--env-file)")
    from dotenv import dotenv_values

    try:
        values = dotenv_values(file, interpolate=False)
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvFileError(f"{path}: cannot read the env file: {exc}") from None
    return {name: value for name, value in values.items() if value is not None}
