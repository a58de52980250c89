"""Step outputs (SPEC §10.1): the file a step appends `NAME=VALUE` lines to, and reading it.

The format is that of GitHub Actions' `$GITHUB_OUTPUT`: `NAME=VALUE` on one line, or
`NAME<<DELIM`, the value's lines, then `DELIM` alone on a line for multi-line values. A line that
is neither fails the step, with the line quoted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from pathlib import Path

from wfrun.errors import WfrunError

OUTPUTS_DIR = "outputs"
MAX_OUTPUTS_BYTES = 1024 * 1024  # per attempt, as GitHub's 1 MB per job: outputs are not files
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class OutputError(WfrunError):
    """A step's outputs file cannot be read as outputs; the message says which line and why."""


# Files made ahead for a step's first attempt (`prepare_output_file`): (directory, step) -> path.
_prepared: dict[tuple[str, str], Path] = {}


def prepare_output_file(directory: Path, step_id: str) -> None:
    """Make the file of the step's first attempt now, ahead of its start, for
    `create_output_file` to hand over then: the scheduler calls this while it waits with nothing
    else to do, so that the step's start does not wait for the file (creating a file costs as
    much as starting a process on some file systems). `discard_prepared` removes those never
    handed over."""
    key = (str(directory), step_id)
    if key not in _prepared:
        _prepared[key] = create_output_file(directory, step_id)


def discard_prepared(directory: Path) -> None:
    """Remove the files made ahead in `directory` for steps that never started."""
    where = str(directory)
    for key in [key for key in _prepared if key[0] == where]:
        path = _prepared.pop(key, None)
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)


def create_output_file(directory: Path, step_id: str) -> Path:
    """A new empty file for one attempt of a step, private to it (created exclusively, so a
    second attempt gets a file of its own). The directory is made when the first file of a run
    finds it missing, not checked for every step. Files are never reused: a descendant of an
    earlier step that escaped being killed could still hold one open and write into it (one
    made ahead for the step by `prepare_output_file` is new: nothing ran with it)."""
    prepared = _prepared.pop((str(directory), step_id), None) if _prepared else None
    if prepared is not None:
        return prepared
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    attempt = 1
    made = False
    while True:
        path = directory / (f"{step_id}.out" if attempt == 1 else f"{step_id}.{attempt}.out")
        try:
            os.close(os.open(path, flags, 0o600))
        except FileExistsError:
            attempt += 1
            continue
        except FileNotFoundError:
            if made:
                raise
            os.makedirs(directory, mode=0o700, exist_ok=True)
            made = True
            continue
        return path


def left_empty(path: Path) -> bool:
    """True when the attempt left its outputs file an empty regular file: there is nothing to
    read or mask. One `lstat`, where reading costs an open, a read and a close."""
    try:
        info = os.lstat(path)
    except OSError:
        return False  # reading it says what is wrong
    return stat.S_ISREG(info.st_mode) and info.st_size == 0


def open_outputs_file(path: Path | str, shown: Path | str | None = None) -> int | None:
    """A descriptor to read a step's outputs file from, None if the step removed it, or
    OutputError when it is no longer a regular file (`shown` is the path messages name)."""
    shown = path if shown is None else shown
    not_regular = (
        f"its outputs file {shown} was replaced by something that is not a regular file: "
        "write to the file itself"
    )
    try:
        # Not through a link the step left in its place: it would quote another file's line.
        # Non-blocking: opening a FIFO put in its place must not wait for a writer forever.
        fd = os.open(
            path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
        )
    except FileNotFoundError:
        return None  # the step removed it: it set nothing
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutputError(
                f"its outputs file {shown} was replaced by a symbolic link, which wfrun does "
                "not follow: write to the file itself"
            ) from None
        if exc.errno == errno.ENXIO:  # a socket
            raise OutputError(not_regular) from None
        raise OutputError(f"cannot read its outputs file {shown}: {exc.strerror}") from None
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        regular = False
    if not regular:
        os.close(fd)
        raise OutputError(not_regular)
    return fd


def read_outputs(path: Path) -> dict[str, str]:
    """The outputs a step wrote to `path`; OutputError for a malformed file."""
    fd = open_outputs_file(path)
    if fd is None:
        return {}
    try:
        data = _read_at_most(fd, MAX_OUTPUTS_BYTES + 1)
    except OSError as exc:
        raise OutputError(f"cannot read its outputs file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if b"\0" in data:
        raise OutputError(
            "its outputs file holds a NUL character, which no argument or environment "
            "variable can carry"
        )
    if len(data) > MAX_OUTPUTS_BYTES:
        raise OutputError(
            f"its outputs file holds more than {MAX_OUTPUTS_BYTES // 1024} KiB: "
            "write large results to a file and pass its path"
        )
    return parse_outputs(data.decode("utf-8", "replace"))


def _read_at_most(fd: int, limit: int) -> bytes:
    """Raw reads: a buffered file object adds an fstat, an ioctl and a seek."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def parse_outputs(text: str) -> dict[str, str]:
    """`NAME=VALUE` and `NAME<<DELIM` … `DELIM` lines; later values of a name win."""
    outputs: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        line = lines[i].removesuffix("\r")
        number = i + 1
        i += 1
        if not line.strip():
            continue
        heredoc = line.find("<<")
        equals = line.find("=")
        if heredoc > 0 and (equals < 0 or heredoc < equals):
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            _check_name(name, line, number)
            if not delimiter:
                raise OutputError(f"output line {number} {_quoted(line)} has no delimiter after <<")
            value: list[str] = []
            while i < len(lines) and lines[i].removesuffix("\r") != delimiter:
                value.append(lines[i].removesuffix("\r"))
                i += 1
            if i >= len(lines):
                raise OutputError(
                    f"output {name!r} (line {number}) never ends: no line {delimiter!r} follows"
                )
            i += 1
            outputs[name] = "\n".join(value)
            continue
        if equals < 0:
            raise OutputError(
                f"output line {number} {_quoted(line)} is not NAME=VALUE or NAME<<DELIMITER"
            )
        name = line[:equals]
        _check_name(name, line, number)
        outputs[name] = line[equals + 1 :]
    return outputs


def _check_name(name: str, line: str, number: int) -> None:
    if not _NAME.fullmatch(name):
        raise OutputError(
            f"output line {number} {_quoted(line)} has an invalid name {name!r} "
            "(letters, digits, '_' and '-', not starting with a digit)"
        )


def _quoted(line: str) -> str:
    return repr(line if len(line) <= 120 else line[:120] + "…")
