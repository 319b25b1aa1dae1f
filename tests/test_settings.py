"""One reader of each setting: the home (``CLEARML_ASSETS_HOME``), the export root and the staging folder.

``accounts.clearml_assets_home`` is the only code that reads ``CLEARML_ASSETS_HOME``;
``accounts.default_export_root`` and ``accounts.default_staging_root`` are the only code that places the
``exports`` and ``staging`` folders in the home. The scan below parses every module of the package, so a
second reader added later fails here, naming the module and the line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import clearml_assets
from clearml_assets import accounts
from clearml_assets.archives import paths
from clearml_assets.resource import ClearMLResource
from clearml_assets.storage import RemoteExports, default_staging_root

PACKAGE = Path(clearml_assets.__file__).parent
HOME_VAR = "CLEARML_ASSETS_HOME"
READERS = {("accounts.py", "clearml_assets_home"), ("accounts.py", "default_export_root"),
           ("accounts.py", "default_staging_root")}


def _names_home_var(node: ast.AST) -> bool:
    """``"CLEARML_ASSETS_HOME"`` or a name bound to it (``HOME_ENV``)."""
    return (isinstance(node, ast.Constant) and node.value == HOME_VAR) or \
        (isinstance(node, (ast.Name, ast.Attribute)) and getattr(node, "id", getattr(node, "attr", "")) == "HOME_ENV")


def _is_env_read(node: ast.AST) -> bool:
    """``<mapping>.get(VAR)``, ``getenv(VAR)``, ``.setdefault/.pop(VAR)`` or ``<mapping>[VAR]`` read."""
    if isinstance(node, ast.Call) and node.args and _names_home_var(node.args[0]):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name in ("get", "getenv", "setdefault", "pop")
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
        return _names_home_var(node.slice)
    return False


def _places_a_home_folder(node: ast.AST) -> bool:
    """``<path> / "exports"`` or ``/ "staging"``, or ``Path("~/.clearml_assets")``: a home folder placed by hand."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant):
        return node.right.value in ("exports", "staging")
    if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Path":
        return any(isinstance(a, ast.Constant) and ".clearml_assets" in str(a.value) for a in node.args)
    return False


def _findings(check) -> list[str]:
    """``module:line in function`` of every node ``check`` flags outside :data:`READERS`."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        owners = {}
        for func in ast.walk(tree):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                owners.update({id(n): func.name for n in ast.walk(func)})  # inner functions overwrite later
        for node in ast.walk(tree):
            owner = owners.get(id(node), "<module>")
            if check(node) and (path.name, owner) not in READERS:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} in {owner}")
    return found


def test_the_home_variable_is_read_in_one_place_only():
    assert _findings(_is_env_read) == []


def test_the_export_root_and_staging_folders_are_placed_in_one_place_only():
    assert _findings(_places_a_home_folder) == []


def test_the_scan_finds_a_second_reader(tmp_path: Path):
    tree = ast.parse('import os\nhome = os.environ.get("CLEARML_ASSETS_HOME")\nx = os.environ[HOME_ENV]\n'
                     'os.environ["CLEARML_ASSETS_HOME"] = "w"\nroot = Path("~/.clearml_assets") / "staging"\n')
    reads = [n for n in ast.walk(tree) if _is_env_read(n)]
    placed = [n for n in ast.walk(tree) if _places_a_home_folder(n)]
    assert [n.lineno for n in reads] == [2, 3]  # the write on line 4 is not a read
    assert sorted(n.lineno for n in placed) == [5, 5]


def test_every_default_follows_the_one_home(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(HOME_VAR, str(tmp_path / "env_home"))
    env_home = tmp_path / "env_home"
    assert accounts.clearml_assets_home() == env_home
    assert paths.default_export_root() == accounts.default_export_root() == env_home / "exports"
    staging = default_staging_root("s3://bucket/prefix")
    assert staging.parent == env_home / "staging" and staging == default_staging_root("s3://bucket/prefix/")
    assert default_staging_root("s3://bucket/other") != staging  # one folder per export root
    assert RemoteExports("file:///unused", staging_root=None).staging.parent == env_home / "staging"

    resource = ClearMLResource(home=str(tmp_path / "field_home"))
    assert resource.export_root_dir() == tmp_path / "field_home" / "exports"
    assert resource.staging_dir("s3://bucket/prefix") == tmp_path / "field_home" / "staging" / staging.name
    assert ClearMLResource().staging_dir("s3://bucket/prefix") == staging
