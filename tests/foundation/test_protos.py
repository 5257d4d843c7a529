"""The committed generated protobuf code matches the .proto sources."""

from __future__ import annotations

from pathlib import Path

from fedgrid import protogen


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    committed = protogen.OUTPUT_ROOT / "fedgrid" / "v1"

    protogen.generate(tmp_path)

    fresh = tmp_path / "fedgrid" / "v1"
    fresh_files = sorted(p.name for p in fresh.iterdir() if p.is_file())
    committed_files = sorted(
        p.name
        for p in committed.iterdir()
        if p.is_file() and p.suffix in (".py", ".pyi")
    )
    assert fresh_files == committed_files, "run `make proto` and commit the result"
    stale = [
        name
        for name in fresh_files
        if (fresh / name).read_bytes() != (committed / name).read_bytes()
    ]
    assert stale == [], f"stale generated files {stale}: run `make proto` and commit"


def test_every_proto_uses_the_versioned_package() -> None:
    for path in protogen.proto_sources():
        assert "package fedgrid.v1;" in Path(path).read_text(), path
