"""The package's layers (setup.cfg's import-linter contract): imports only point down, with no cycle."""

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 450


def lint_imports(root):
    """Run lint-imports on the package under `root` with the repository's contracts."""
    program = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    command = [sys.executable, "-c", program, "--config", str(ROOT / "setup.cfg"), "--no-cache"]
    env = {"PYTHONPATH": str(root), "PATH": ""}
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def lint_entry_point():
    pytest.importorskip("importlinter")
    return lint_imports


def test_the_layers_contract_holds(lint_entry_point):
    result = lint_entry_point(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_the_layers_contract_fails_when_a_low_module_imports_a_high_one(lint_entry_point, tmp_path):
    shutil.copytree(ROOT / "keras_sar2opt", tmp_path / "keras_sar2opt", ignore=shutil.ignore_patterns("__pycache__"))
    low = tmp_path / "keras_sar2opt" / "files.py"
    low.write_text(low.read_text() + "\n\ndef _report():\n    from keras_sar2opt.reports import report  # noqa\n")
    result = lint_entry_point(tmp_path)
    assert result.returncode == 1
    assert "keras_sar2opt.files is not allowed to import keras_sar2opt.reports" in result.stdout


def test_no_module_of_the_package_is_in_an_import_cycle():
    graph = grimp.build_graph("keras_sar2opt")
    cycles = [
        (importer, imported)
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if imported != importer and graph.chain_exists(importer=imported, imported=importer)
    ]
    assert cycles == []


def test_every_module_of_the_package_is_small_enough_to_read():
    sizes = {path: len(path.read_text().splitlines()) for path in (ROOT / "keras_sar2opt").rglob("*.py")}
    assert {str(path.relative_to(ROOT)): n for path, n in sizes.items() if n > MAX_MODULE_LINES} == {}
