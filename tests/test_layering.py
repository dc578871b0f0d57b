"""The layers and the naming rule of docs/internals.md, as tests.

- bootres/core is sans-I/O: it imports nothing that touches the world
  (STYLE.md's rule), and nothing of bootres outside core/;
- nothing at the top level (config, settings, status) imports bootres.shell:
  the shell sits on top; only ``bootres/__main__.py``, the entry point, reaches into it;
- a shell module named after a core pairs with it: ``shell/X_service.py``
  runs ``core/X.py`` under the CoreDriver (and imports it), ``shell/X_io.py``
  carries its bytes or files; no other shell module has a core's name;
- every module has its test file: ``tests/core/test_X.py`` for ``core/X.py``,
  ``tests/shell/test_X.py`` (or ``tests/net/`` when it needs namespaces) for
  ``shell/X.py``, ``tests/test_X.py`` for the top level.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bootres"
CORE = PACKAGE / "core"
SHELL = PACKAGE / "shell"
FORBIDDEN = {"socket", "asyncio", "os", "time", "pyroute2", "systemd", "selectors", "subprocess",
             "threading", "random", "bootres.shell", "dns.query", "dns.asyncquery", "dns.resolver",
             "dns.asyncresolver"}
PAIRED = ("_service", "_io")


def modules(directory: Path) -> list[Path]:
    return sorted(path for path in directory.glob("*.py") if path.name != "__init__.py")


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def within(name: str, prefixes) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


@pytest.mark.parametrize("path", modules(CORE), ids=lambda p: p.name)
def test_core_module_imports_nothing_from_the_shell_world(path):
    bad = {name for name in imported(path) if within(name, FORBIDDEN)}
    assert not bad, f"{path.name} imports {sorted(bad)}"
    outside = {name for name in imported(path) if within(name, {"bootres"}) and not within(name, {"bootres.core"})}
    assert not outside, f"core/{path.name} imports {sorted(outside)}: a core knows only other cores"


@pytest.mark.parametrize("path", [p for p in modules(PACKAGE) if p.name != "__main__.py"], ids=lambda p: p.name)
def test_nothing_at_the_top_level_imports_the_shell(path):
    bad = {name for name in imported(path) if within(name, {"bootres.shell"})}
    assert not bad, f"bootres/{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", modules(SHELL), ids=lambda p: p.name)
def test_a_shell_module_named_after_a_core_pairs_with_it(path):
    cores = {core.stem for core in modules(CORE)}
    assert path.stem not in cores, f"shell/{path.name} has a core's name: call it {path.stem}_io or _service"
    suffix = next((s for s in PAIRED if path.stem.endswith(s)), None)
    if suffix is None:
        assert not any(path.stem.startswith(core + "_") for core in cores), f"shell/{path.name}: X_io or X_service"
        return
    core = path.stem[:-len(suffix)]
    assert core in cores, f"shell/{path.name} pairs with core/{core}.py, which does not exist"
    if suffix == "_service":
        assert f"bootres.core.{core}" in imported(path), f"shell/{path.name} does not run its core, core/{core}.py"


def test_the_shipped_entry_points_are_the_shell():
    assert imported(PACKAGE / "__main__.py") <= {"sys", "bootres.shell.cli", "bootres.shell.cli.main"}


@pytest.mark.parametrize("path", modules(CORE) + modules(SHELL) + [p for p in modules(PACKAGE) if p.name != "__main__.py"],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_has_its_test_file(path):
    layer = path.parent.relative_to(PACKAGE).parts
    tests = ROOT / "tests"
    places = {(): [tests], ("core",): [tests / "core"], ("shell",): [tests / "shell", tests / "net"]}[layer]
    wanted = [place / f"test_{path.stem}.py" for place in places]
    assert any(candidate.exists() for candidate in wanted), f"no {' or '.join(str(w.relative_to(ROOT)) for w in wanted)}"
