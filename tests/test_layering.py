"""bootres/core is sans-I/O: it imports nothing that touches the world (STYLE.md's rule, as a test)."""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "bootres" / "core"
FORBIDDEN = {"socket", "asyncio", "os", "time", "pyroute2", "systemd", "selectors", "subprocess",
             "threading", "random", "bootres.shell", "dns.query", "dns.asyncquery", "dns.resolver",
             "dns.asyncresolver"}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_nothing_from_the_shell_world(path):
    bad = {name for name in imported(path) if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)}
    assert not bad, f"{path.name} imports {sorted(bad)}"
