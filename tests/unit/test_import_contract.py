"""The import rule of docs/architecture.md, as import-linter checks it (pyproject.toml,
[tool.importlinter]): imports flow from commands down to types/errors, never up."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_imports_flow_down():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    assert Path(exe).exists(), "lint-imports is missing: pip install -e '.[test]' installs import-linter"
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "2 kept, 0 broken" in proc.stdout


def test_every_package_has_a_layer():
    """The contract is exhaustive: a new top-level package must be given its place in the layers."""
    import tomllib

    layers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    named = {name.strip() for layer in layers for name in layer.split("|")}
    src = ROOT / "src" / "sqlcoach"
    children = {p.name for p in src.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    children |= {p.stem for p in src.glob("*.py") if p.stem != "__init__"}
    assert children == named
