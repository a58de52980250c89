"""The files a run leaves behind: report.json (SPEC §5) and a JUnit XML file.

Both are written atomically (a temporary file in the same directory, then os.replace), so a
reader, or a run that is interrupted while writing, never sees half a file. They are not
fsynced: that guards only against a power cut, which loses the run anyway, and costs every run
10 ms or more (a great deal more on a busy or network disk).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from wfrun.output_text import strip_ansi
from wfrun.results import RunResult, StepResult, StepStatus

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

REPORT_NAME = "report.json"


@functools.cache
def _xml_invalid() -> re.Pattern[str]:
    # Characters XML 1.0 cannot carry even escaped; a step's output may contain any of them.
    # Compiled on first use: these ranges cost ~8 ms, which a run without --junit must not pay.
    return re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace `path` with `data` all at once, creating its directory if needed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # os.urandom, what secrets.token_hex reads, without secrets' import of hmac and hashlib.
    tmp = target.with_name(f".{target.name}.{os.urandom(4).hex()}.tmp")
    # os.open with 0o666 lets the umask decide the mode, as for any file the user creates
    # (mkstemp would leave the report readable by its owner only).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def report_json(result: RunResult) -> str:
    # default=str: an agent's reply is JSON already, but nothing must stop the report being written.
    return json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"


def write_report(result: RunResult, path: str | os.PathLike[str]) -> None:
    """Write the report of SPEC §5 as indented JSON."""
    write_atomic(path, report_json(result).encode("utf-8"))


# -- JUnit -----------------------------------------------------------------------------------


def _xml_text(text: str) -> str:
    return _xml_invalid().sub("", strip_ansi(text))


def _seconds(value: float | None) -> str:
    return f"{value or 0.0:.3f}"


def _testcase(result: StepResult, workflow_name: str) -> ET.Element:
    import xml.etree.ElementTree as ET  # lazily, as in junit_tree

    case = ET.Element(
        "testcase",
        classname=_xml_text(workflow_name),
        name=result.step_id,
        time=_seconds(result.duration),
    )
    reason = _xml_text(result.reason or result.status.value)
    if result.attempts > 1:
        reason = f"after {result.attempts} attempts: {reason}"
    if result.attempts > 1 or result.reused:
        properties = ET.SubElement(case, "properties")
        ET.SubElement(properties, "property", name="attempts", value=str(result.attempts))
        if result.reused:
            ET.SubElement(properties, "property", name="reused", value="true")
    if result.allowed_failure:
        # The run succeeded, so the test report must not turn CI red; skipped keeps it visible.
        message = f"allowed failure (continueOnError): {reason}"
        ET.SubElement(case, "skipped", message=message)
        ET.SubElement(case, "system-out").text = _xml_text(result.output_tail)
    elif result.status in (StepStatus.FAILED, StepStatus.TIMED_OUT):
        failure = ET.SubElement(case, "failure", message=reason, type=result.status.value)
        failure.text = _xml_text(result.output_tail)
    elif result.status in (StepStatus.SKIPPED, StepStatus.CANCELLED):
        ET.SubElement(case, "skipped", message=reason)
    if result.status is StepStatus.SUCCEEDED:
        notes = []
        if result.attempts > 1:
            notes.append(f"wfrun: passed after {result.attempts} attempts")
        if result.reused:
            notes.append("wfrun: reused from an earlier run (--resume), not run again")
        if result.output_tail or notes:
            text = "".join(note + "\n" for note in notes) + result.output_tail
            ET.SubElement(case, "system-out").text = _xml_text(text)
    return case


def junit_tree(result: RunResult, workflow_name: str) -> ET.ElementTree[ET.Element]:
    """One <testsuite> for the run with one <testcase> per step."""
    import xml.etree.ElementTree as ET  # lazily: only --junit needs it (~15 ms to import)

    cases = [_testcase(r, workflow_name) for r in result.step_results.values()]
    counts = {
        "tests": str(len(cases)),
        "failures": str(sum(c.find("failure") is not None for c in cases)),
        "errors": "0",
        "skipped": str(sum(c.find("skipped") is not None for c in cases)),
        "time": _seconds(result.execution_time_s),
    }
    name = _xml_text(workflow_name)
    root = ET.Element("testsuites", {"name": name, **counts})
    suite = ET.SubElement(root, "testsuite", {"name": name, **counts})
    if result.started_at:
        suite.set("timestamp", result.started_at)
    properties = ET.SubElement(suite, "properties")
    for name, value in (("runId", result.run_id), ("status", result.status.value)):
        ET.SubElement(properties, "property", name=name, value=value)
    suite.extend(cases)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(
    result: RunResult, path: str | os.PathLike[str], workflow_name: str | None = None
) -> None:
    """Write a JUnit XML file: failed and timed-out steps as failures, skipped and cancelled
    steps as skipped."""
    import xml.etree.ElementTree as ET

    tree = junit_tree(result, workflow_name or result.workflow_name)
    data = ET.tostring(tree.getroot(), encoding="utf-8", xml_declaration=True)
    write_atomic(path, data + b"\n")
