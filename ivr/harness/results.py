"""Results of a harness run: JUnit XML (one testcase per scenario) and JSON (per call)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .call import CallResult


def junit_xml(results: list[CallResult], suite: str = "ivr-harness") -> str:
    failures = sum(1 for r in results if not r.ok)
    root = ET.Element("testsuite", name=suite, tests=str(len(results)),
                      failures=str(failures), errors="0",
                      time=f"{sum(r.duration_s for r in results):.3f}")
    for r in results:
        case = ET.SubElement(root, "testcase", classname=Path(r.scenario).stem, name=r.name,
                             time=f"{r.duration_s:.3f}")
        if not r.ok:
            fail = ET.SubElement(case, "failure", message=f"{r.failed_step}: {r.failure}")
            fail.text = "\n".join(
                f"{'ok  ' if s.ok else 'FAIL'} {s.label} at {s.at_ms:.0f} ms "
                f"({s.duration_ms:.0f} ms): {s.detail}" for s in r.steps)
        out = ET.SubElement(case, "system-out")
        out.text = json.dumps({k: v for k, v in r.as_dict().items() if k != "steps"})
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_results(results: list[CallResult], junit: Path | None, json_path: Path | None
                  ) -> None:
    if junit is not None:
        junit.write_text(junit_xml(results), encoding="utf-8")
    if json_path is not None:
        data = {"passed": sum(r.ok for r in results), "failed": sum(not r.ok for r in results),
                "calls": [r.as_dict() for r in results]}
        json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
