"""Architecture rules of the package, checked on its source with ``ast``.

- No module reaches into another part's private names: neither an import of
  a ``_name`` from another subpackage nor an access ``obj._name`` of a
  method/attribute that only classes of other subpackages define.
- No module is over 400 lines.
- Imports go one way: data -> models/simulate -> posterior -> population ->
  plotting (the CLI, the report and the datasets at the top may import all).

A "part" is a subpackage of ``sknlme`` (``sknlme/posterior/...``) or a
top-level module (``sknlme/cli.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "sknlme"
MAX_LINES = 400

# part -> the parts it must not import
FORBIDDEN = {
    "data": {"models", "simulate", "posterior", "population", "plotting"},
    "models": {"posterior", "population", "plotting"},
    "simulate": {"posterior", "population", "plotting"},
    "posterior": {"population", "plotting"},
    "population": {"plotting"},
}


def _modules():
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path):
    return path.relative_to(ROOT.parent).as_posix()


def _part(path):
    parts = path.relative_to(ROOT).parts
    return parts[0] if len(parts) > 1 else Path(parts[0]).stem


def _package(path):
    """Dotted package of a module (``sknlme.plotting`` for sknlme/plotting/_fits.py)."""
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return parts if path.name == "__init__.py" else parts[:-1]


def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _imports(path, tree):
    """``(line, target module parts, imported names)`` of every import of sknlme code."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                mod = alias.name.split(".")
                if mod[0] == "sknlme":
                    out.append((node.lineno, mod, []))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package(path)[: len(_package(path)) - node.level + 1]
                mod = base + (node.module.split(".") if node.module else [])
            else:
                mod = (node.module or "").split(".")
            if mod[0] == "sknlme":
                out.append((node.lineno, mod, [a.name for a in node.names]))
    return out


def _target_part(mod):
    return mod[1] if len(mod) > 1 else None


_TREES = {p: ast.parse(p.read_text(), filename=str(p)) for p in _modules()}


def _self_like(node):
    """``self``, ``cls``, ``type(self)``, ``super()``."""
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id == "super":
            return True
        if node.func.id == "type" and len(node.args) == 1:
            return isinstance(node.args[0], ast.Name) and node.args[0].id == "self"
    return False


def _class_privates(tree):
    """Private method names (``def _x`` in a class) and ``self._x = ...`` attributes."""
    names = set()
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for item in cls.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and _private(item.name):
                names.add(item.name)
        for node in ast.walk(cls):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign | ast.AugAssign):
                targets = [node.target]
            for t in targets:
                for e in t.elts if isinstance(t, ast.Tuple | ast.List) else [t]:
                    if isinstance(e, ast.Attribute) and _self_like(e.value) and _private(e.attr):
                        names.add(e.attr)
    return names


def _file_names(tree):
    """Every name the file itself binds (definitions, assignments, imports, attributes)."""
    names = _class_privates(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return names


def private_imports():
    found = []
    for path, tree in _TREES.items():
        for line, mod, names in _imports(path, tree):
            if _target_part(mod) in (None, _part(path)):
                continue
            private = [n for n in names if _private(n)]
            private += [m for m in mod[2:] if _private(m) and not names]
            if private:
                found.append(f"{_rel(path)}:{line}: {'.'.join(mod)} -> {', '.join(private)}")
    return found


def private_attribute_access():
    by_part = {}
    for path, tree in _TREES.items():
        by_part.setdefault(_part(path), set()).update(_class_privates(tree))
    found = []
    for path, tree in _TREES.items():
        part = _part(path)
        own = by_part.get(part, set()) | _file_names(tree)
        others = {
            name: sorted(p for p, names in by_part.items() if name in names and p != part)
            for name in {n for p, names in by_part.items() if p != part for n in names}
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or not _private(node.attr):
                continue
            if _self_like(node.value) or node.attr in own or node.attr not in others:
                continue
            where = ", ".join(others[node.attr])
            found.append(f"{_rel(path)}:{node.lineno}: .{node.attr} (defined in {where})")
    return sorted(found)


def long_modules():
    return [
        f"{_rel(p)}: {n} lines"
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    ]


def backward_imports():
    found = []
    for path, tree in _TREES.items():
        banned = FORBIDDEN.get(_part(path), set())
        for line, mod, _ in _imports(path, tree):
            if _target_part(mod) in banned:
                found.append(f"{_rel(path)}:{line}: {_part(path)} imports {'.'.join(mod)}")
    return found


@pytest.mark.parametrize(
    "check", [private_imports, private_attribute_access, long_modules, backward_imports]
)
def test_architecture(check):
    found = check()
    assert not found, f"{check.__name__}: {len(found)} found\n" + "\n".join(found)


def test_checks_see_the_rules():
    """The checks flag what they are meant to flag (a synthetic module, no files)."""
    code = (
        "from ..posterior._diagnostics import _check\n"
        "from ..posterior import _diagnostics\n"
        "from ..data import Padded\n"
        "def f(model, self):\n"
        "    model._log_likelihood(1)\n"
        "    self._log_likelihood(1)\n"
        "    type(self)._log_likelihood(1)\n"
        "    return model.__class__\n"
    )
    path = ROOT / "plotting" / "_synthetic.py"
    tree = ast.parse(code)
    imports = _imports(path, tree)
    assert [m for _, m, _ in imports] == [
        ["sknlme", "posterior", "_diagnostics"],
        ["sknlme", "posterior"],
        ["sknlme", "data"],
    ]
    saved = dict(_TREES)
    try:
        _TREES[path] = tree
        flagged = private_imports()
        assert any("_synthetic.py:1:" in f and "_check" in f for f in flagged)
        assert any("_synthetic.py:2:" in f and "_diagnostics" in f for f in flagged)
        assert not any("_synthetic.py:3:" in f for f in flagged)
        access = [f for f in private_attribute_access() if "_synthetic.py" in f]
        assert [f.split(":")[1] for f in access] == ["5"]
    finally:
        _TREES.clear()
        _TREES.update(saved)
