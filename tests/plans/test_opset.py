"""The one opset file: well formed, and every op exists in this torch build."""

from __future__ import annotations

import json

from fedgrid.plans.opset import OPSET_FILE, SYM_FUNCTIONS, aten_overload, load_opset


def test_opset_file_is_versioned_and_names_known_targets() -> None:
    document = json.loads(OPSET_FILE.read_text())
    opset = load_opset()

    assert opset.version == document["version"] >= 1
    assert opset.targets == ("python", "torchscript", "browser")
    assert all("python" in targets for targets in opset.ops.values())


def test_every_aten_op_resolves_and_every_size_op_is_bound() -> None:
    opset = load_opset()

    aten = [op for op in opset.ops if op.startswith("aten.")]
    sym = {op for op in opset.ops if op.startswith("sym.")}

    assert all(aten_overload(op)._schema is not None for op in aten)
    assert sym == set(SYM_FUNCTIONS)
    assert len(aten) + len(sym) == len(opset.ops)
