"""The design rules of docs/architecture.md as a test (fast, static): module and function sizes, ClearML endpoint
names only in the client and the local server, and the import-linter contracts of pyproject ``[tool.importlinter]``.

A module stays under ~400 lines and a function under ~50 lines of code (docstring, blank and comment lines aside):
split by step, as the exporter is. The allow-lists below are the only exceptions, each with the reason a split
would hurt (or who is splitting it); add to them only with such a reason. A stale entry (the module or function
is back under the limit, or gone) fails too, so the lists only shrink.

``python tests/test_design.py`` prints the largest modules and functions (what is next to split).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from functools import lru_cache
from pathlib import Path

import clearml_assets

PACKAGE = Path(clearml_assets.__file__).resolve().parent
REPO = PACKAGE.parent
MODULE_LINES = 400
FUNCTION_LINES = 50

# module (relative to clearml_assets/) -> why it stays over MODULE_LINES
LONG_MODULES: dict[str, str] = {}  # none today
# "module:function" -> why it stays over FUNCTION_LINES of code (none today)
LONG_FUNCTIONS: dict[str, str] = {}
ENDPOINT_LAYERS = ("client", "local_server")


def _modules(root: Path = PACKAGE) -> list[Path]:
    return sorted(root.rglob("*.py"))


@lru_cache(maxsize=None)
def _parsed(path: Path) -> tuple[list[str], ast.Module]:
    """A module's lines and syntax tree (read once for every check)."""
    text = path.read_text(encoding="utf-8")
    return text.splitlines(), ast.parse(text)


def _rel(path: Path, root: Path = PACKAGE) -> str:
    return path.relative_to(root).as_posix()


def code_lines(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of code of a function (decorators and nested functions included): not its docstring, not blank,
    not a comment alone."""
    body = node.body
    docstring: range = range(0)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        docstring = range(body[0].lineno, body[0].end_lineno + 1)
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return sum(1 for n in range(start, node.end_lineno + 1)
               if n not in docstring and lines[n - 1].strip() and not lines[n - 1].strip().startswith("#"))


def module_sizes(root: Path = PACKAGE) -> dict[str, int]:
    """Lines of each module under ``root`` (all lines, as ``wc -l`` counts them)."""
    return {_rel(p, root): len(_parsed(p)[0]) for p in _modules(root)}


def function_sizes(root: Path = PACKAGE) -> dict[str, int]:
    """Lines of code of each function under ``root`` as ``module:name`` (the longest of a repeated name)."""
    found: dict[str, int] = {}
    for path in _modules(root):
        lines, tree = _parsed(path)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                key = f"{_rel(path, root)}:{node.name}"
                found[key] = max(found.get(key, 0), code_lines(lines, node))
    return found


def over_limit(sizes: dict[str, int], limit: int, allowed: dict[str, str]) -> tuple[dict[str, int], list[str]]:
    """What is over ``limit`` and not allowed, and the allow-list entries no longer over it (stale)."""
    over = {name: n for name, n in sizes.items() if n > limit and name not in allowed}
    stale = [name for name in allowed if sizes.get(name, 0) <= limit]
    return over, stale


def test_code_lines_counts_code_only():
    source = ('@cache\ndef f(x):\n    """Doc\n\n    more doc.\n    """\n\n    # why\n    y = x + 1\n'
              '    return (y,\n            x)\n')
    [node] = ast.parse(source).body
    assert code_lines(source.splitlines(), node) == 5


def test_the_size_checks_catch_a_long_module_a_long_function_and_a_stale_entry(tmp_path):
    long_function = "def long():\n" + "".join(f"    x{i} = {i}\n" for i in range(FUNCTION_LINES))
    (tmp_path / "big.py").write_text(long_function + "\n" * (MODULE_LINES - FUNCTION_LINES), encoding="utf-8")
    (tmp_path / "small.py").write_text('def short():\n    """A doc."""\n' + "    # a comment\n" * 60
                                       + "    return 1\n", encoding="utf-8")
    assert over_limit(module_sizes(tmp_path), MODULE_LINES, {}) == ({"big.py": MODULE_LINES + 1}, [])
    assert over_limit(function_sizes(tmp_path), FUNCTION_LINES, {"small.py:short": "why"}) == (
        {"big.py:long": FUNCTION_LINES + 1}, ["small.py:short"])


def test_no_module_over_400_lines():
    sizes = module_sizes()
    assert len(sizes) > 150, f"only {len(sizes)} modules under {PACKAGE}"
    over, stale = over_limit(sizes, MODULE_LINES, LONG_MODULES)
    assert over == {}, f"split these modules by step (under {MODULE_LINES} lines): {over}"
    assert stale == [], f"no longer over {MODULE_LINES} lines (or gone): drop them from LONG_MODULES: {stale}"


def test_no_function_over_50_lines_of_code():
    over, stale = over_limit(function_sizes(), FUNCTION_LINES, LONG_FUNCTIONS)
    assert over == {}, f"split these functions by step (under {FUNCTION_LINES} lines of code): {over}"
    assert stale == [], f"no longer over {FUNCTION_LINES} lines (or gone): drop them from LONG_FUNCTIONS: {stale}"


def _endpoint_names() -> set[str]:
    from clearml_assets.local_server import services  # noqa: F401 - registers every endpoint it serves
    from clearml_assets.local_server.core.registry import ENDPOINTS

    return set(ENDPOINTS)


def _endpoint_uses(tree: ast.AST, services: set[str], actions: set[str]) -> list[tuple[int, str]]:
    """``service.action`` strings (also as an f-string's start) and raw ``.call(...)`` requests in a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            service, _, action = node.value.partition(".")
            if service in services and action in actions:
                found.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            head = str(node.values[0].value)
            if head.endswith(".") and head[:-1] in services:
                found.append((node.lineno, f"{head}{{...}}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "call":
            found.append((node.lineno, ".call(...)"))
    return found


def test_endpoint_names_live_in_the_client_and_the_local_server():
    """The package calls the typed per-service clients (``client.tasks.get(id)``); ``service.action`` names and
    raw ``.call(...)`` requests stay in ``clearml_assets/client/`` and ``clearml_assets/local_server/`` (which
    serves them)."""
    names = _endpoint_names()
    services = {n.split(".", 1)[0] for n in names}
    actions = {n.split(".", 1)[1] for n in names}
    assert {"tasks.get_all", "events.add_batch", "models.get_all"} <= names
    checked = [p for p in _modules() if _rel(p).split("/", 1)[0] not in ENDPOINT_LAYERS]
    assert len(checked) > 80
    found = [f"{_rel(p)}:{line} {text}" for p in checked
             for line, text in _endpoint_uses(_parsed(p)[1], services, actions)]
    assert found == [], "endpoint names outside client/ and local_server/: call client.<service>.<call>() instead"
    probe = ast.parse('a = "tasks.get_all"; b = "models.json"; c = f"events.{x}"; d = s.call("x")')
    assert [t for _, t in _endpoint_uses(probe, services, actions)] == ["tasks.get_all", "events.{...}",
                                                                        ".call(...)"]


def _lint_imports(cwd: Path, pythonpath: Path, *args: str) -> subprocess.CompletedProcess:
    command = Path(sys.executable).with_name("lint-imports")
    assert command.exists(), f"import-linter is not installed beside {sys.executable} (pip install -e '.[test]')"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(pythonpath), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([str(command), "--no-cache", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_import_contracts_are_kept():
    """``lint-imports`` (as ``.ci/run`` runs it) on this tree: every contract of pyproject ``[tool.importlinter]``
    kept, both layer contracts among them."""
    done = _lint_imports(REPO, REPO)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "local server layers" in done.stdout and "package layers" in done.stdout, done.stdout[-2000:]
    kept = re.search(r"Contracts: (\d+) kept, 0 broken", done.stdout)
    assert kept and int(kept.group(1)) >= 2, done.stdout[-2000:]


def test_lint_imports_fails_on_an_upward_import(tmp_path):
    """The same command fails when a lower layer imports a higher one (so the test above can fail)."""
    (tmp_path / "probe_pkg").mkdir()
    (tmp_path / "probe_pkg" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "probe_pkg" / "high.py").write_text("", encoding="utf-8")
    (tmp_path / "probe_pkg" / "low.py").write_text("from probe_pkg import high\n", encoding="utf-8")
    (tmp_path / ".importlinter").write_text(textwrap.dedent("""\
        [importlinter]
        root_package = probe_pkg
        [importlinter:contract:layers]
        name = probe layers
        type = layers
        containers = probe_pkg
        layers =
            high
            low
        """), encoding="utf-8")
    done = _lint_imports(tmp_path, tmp_path, "--config", str(tmp_path / ".importlinter"))
    assert done.returncode != 0 and "probe layers BROKEN" in done.stdout, done.stdout[-2000:]



def test_the_architecture_page_names_what_exists():
    """docs/architecture.md: every module, file and folder it names exists, its diagram holds every layer of every
    import-linter contract, and it names each module the allow-list keeps over size."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = [_rel(p) for p in _modules()]
    folders = {part for m in modules for part in m.split("/")[:-1]}
    named = set(re.findall(r"`([\w./]+\.(?:py|toml|md)|\w+/)`", text))
    assert len(named) > 40
    missing = [n for n in named if not ((PACKAGE / n).exists() or (REPO / n).exists()
                                        or (n.endswith("/") and n[:-1] in folders)
                                        or any(m.rsplit("/", 1)[-1] == n for m in modules))]
    assert missing == [], f"docs/architecture.md names what the tree does not hold: {missing}"
    diagram = text.split("```")[1]
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    layers = {name.strip() for contract in contracts["contracts"] for layer in contract["layers"]
              for name in re.split(r"[:|]", layer)}
    assert {"client", "local_server", "services", "bll", "store"} <= layers
    absent = sorted(name for name in layers if not re.search(rf"(?<![\w.]){name}\b", diagram))
    assert absent == [], f"layers of pyproject's contracts missing from the diagram: {absent}"
    assert [m for m in LONG_MODULES if f"`{m}`" not in text] == [], "say in the page why these stay over size"


if __name__ == "__main__":
    for title, sizes, limit in (("modules (lines)", module_sizes(), MODULE_LINES),
                                ("functions (lines of code)", function_sizes(), FUNCTION_LINES)):
        print(f"largest {title}, limit {limit}:")
        for name, n in sorted(sizes.items(), key=lambda item: -item[1])[:15]:
            print(f"  {n:5d}  {name}{'  (allowed)' if name in LONG_MODULES | LONG_FUNCTIONS else ''}")
