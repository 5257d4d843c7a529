"""The JS translation table, the opset's browser column and the JS protos agree."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from fedgrid.plans import load_opset
from fedgrid.plans.opset import BROWSER, OPSET_FILE
from tests.browser.conftest import PACKAGE

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")

LIST_TABLE = (
    "import('./src/ops.js').then((m) => "
    "console.log(JSON.stringify(Object.keys(m.TRANSLATIONS))))"
)


def _js_table() -> list[str]:
    completed = subprocess.run(
        ["node", "--input-type=module", "-e", LIST_TABLE],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    ops: list[str] = json.loads(completed.stdout)
    return ops


def test_browser_column_lists_exactly_the_translated_ops() -> None:
    table = _js_table()
    with OPSET_FILE.open(encoding="utf-8") as handle:
        document = json.load(handle)

    browser = {op for op, targets in document["ops"].items() if BROWSER in targets}

    assert len(table) == len(set(table))
    assert sorted(set(table) - browser) == [], "translated but not in the column"
    assert sorted(browser - set(table)) == [], "in the column but not translated"
    assert browser == {op for op, t in load_opset().ops.items() if BROWSER in t}


def test_vendored_protos_match_the_proto_files(browser_tools: None) -> None:
    completed = subprocess.run(
        ["node", "tools/protos.mjs", "--check"],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert completed.returncode == 0, completed.stderr
