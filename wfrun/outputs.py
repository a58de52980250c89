"""Step outputs (SPEC §10.1): the file a step appends `NAME=VALUE` lines to, and reading it.

The format is that of GitHub Actions' `$GITHUB_OUTPUT`: `NAME=VALUE` on one line, or
`NAME<<DELIM`, the value's lines, then `DELIM` alone on a line for multi-line values. A line that
is neither fails the step, with the line quoted.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import threading
from collections import OrderedDict, deque
from pathlib import Path

from wfrun.errors import WfrunError

OUTPUTS_DIR = "outputs"
MAX_OUTPUTS_BYTES = 1024 * 1024  # per attempt, as GitHub's 1 MB per job: outputs are not files
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
SPARES_PER_DIRECTORY = 64
# Only where a step's escaped descendants are killed at its end (escapes: Linux): elsewhere one
# could still hold the file open and write into the next step's outputs.
_REUSE = sys.platform.startswith("linux")
_SPARE_DIRECTORIES = 8


class OutputError(WfrunError):
    """A step's outputs file cannot be read as outputs; the message says which line and why."""


class _Spares:
    """Empty outputs files that finished attempts left as they were made, to be renamed for the
    next attempts instead of creating files. Creating a file allocates an inode, which on some
    file systems costs more CPU than starting the step's process (half a millisecond on the ext4
    these benchmarks run on); a link and an unlink cost a twentieth of that. Bounded: a few
    files for each of the last few directories."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_directory: OrderedDict[str, deque[str]] = OrderedDict()

    def put(self, path: Path) -> None:
        key = str(path.parent)
        with self._lock:
            spares = self._by_directory.get(key)
            if spares is None:
                spares = self._by_directory[key] = deque(maxlen=SPARES_PER_DIRECTORY)
                while len(self._by_directory) > _SPARE_DIRECTORIES:
                    self._by_directory.popitem(last=False)
            spares.append(str(path))

    def take(self, directory: Path) -> str | None:
        with self._lock:
            spares = self._by_directory.get(str(directory))
            return spares.popleft() if spares else None


_spares = _Spares()


def create_output_file(directory: Path, step_id: str) -> Path:
    """A new empty file for one attempt of a step, private to it (made exclusively, so a
    second attempt gets a file of its own): a spare (`retire_output_file`) linked under the new
    name, else a new file. The directory is made when the first file of a run finds it missing,
    not checked for every step."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    attempt = 1
    made = False
    spare = _spares.take(directory)
    while True:
        path = directory / (f"{step_id}.out" if attempt == 1 else f"{step_id}.{attempt}.out")
        try:
            if spare is not None:
                os.link(spare, path)  # fails, as O_EXCL, if path exists
            else:
                os.close(os.open(path, flags, 0o600))
        except FileExistsError:
            attempt += 1
            continue
        except FileNotFoundError:
            if spare is not None:  # the spare is gone: make a file after all
                spare = None
                continue
            if made:
                raise
            os.makedirs(directory, mode=0o700, exist_ok=True)
            made = True
            continue
        except OSError:
            if spare is None:
                raise
            spare = None
            continue
        if spare is not None:
            os.unlink(spare)
        return path


def retire_output_file(path: Path) -> bool:
    """True when the attempt left its outputs file empty, as it was made: there is nothing to
    read or mask, and the file becomes a spare for a later attempt (its name goes away). One
    `lstat`, where reading costs an open, a read and a close. Only a regular file of ours with
    one link and the mode it was made with is taken: not one the step linked elsewhere,
    replaced or changed. Its processes are all gone by now (the step has ended: its group and
    escapees were killed and its pipes drained), so nothing of the attempt writes to it later."""
    try:
        info = os.lstat(path)
    except OSError:
        return False  # reading it says what is wrong
    if not (stat.S_ISREG(info.st_mode) and info.st_size == 0):
        return False
    if (
        _REUSE
        and info.st_nlink == 1
        and stat.S_IMODE(info.st_mode) == 0o600
        and info.st_uid == os.geteuid()
    ):
        _spares.put(path)
    return True


def read_outputs(path: Path) -> dict[str, str]:
    """The outputs a step wrote to `path`; OutputError for a malformed file."""
    try:
        # Not through a link the step left in its place: it would quote another file's line.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return {}  # the step removed it: it set nothing
    except OSError as exc:
        raise OutputError(f"cannot read its outputs file {path}: {exc.strerror}") from None
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
