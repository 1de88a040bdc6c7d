"""The architecture, read from the source with :mod:`ast` (issue 9): layers, no import cycles,
no file over 500 lines, no function over 60.

Layers, top to bottom (DESIGN.md)::

    cli -> clinical / experiments -> bundle / engines -> methods / data
        -> transforms / io / readout -> networks / losses / keys / errors

A module may import its own package, any package of its own layer and any lower layer; nothing
imports upward, a function-level import included (it hides the dependency, it does not remove
it). Imports under ``if TYPE_CHECKING:`` count for the layers (they are still a dependency of
the design) but not for cycles (they never run). Top-level modules sit in the layer of what they
hold: ``segment`` (a re-export of clinical/) in clinical, ``sweep`` and ``bench`` (re-exports of
experiments/) in experiments, ``metrics`` (the landmark NRMSE the landmark engine reports) in
engines; ``lsmseg/__init__.py`` (the version) sits below everything, so any module may read it.

Within a layer, two packages may not import each other (a package cycle), and the leaks issue 9
names may not come back: ``io`` importing ``transforms`` or ``readout``. ``bundle`` <-> ``data``
is caught as an upward import (data is the lower layer).

Each test lists every violation it finds, one per line, so a failing run is a to-do list.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lsmseg"
ROOT = "lsmseg"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("clinical", "experiments"),
    ("bundle", "engines"),
    ("methods", "data"),
    ("transforms", "io", "readout"),
    ("networks", "losses", "keys", "errors"),
)
TOP_LEVEL_AREA = {"segment": "clinical", "sweep": "experiments", "bench": "experiments", "metrics": "engines"}
FORBIDDEN = {("io", "transforms"), ("io", "readout")}  # same-layer leaks named by issue 9
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60  # def line to last line, decorators excluded


@dataclass(frozen=True)
class Import:
    """``source`` imports ``target`` (both dotted lsmseg module names) at ``line`` of its file."""

    source: str
    target: str
    line: int
    type_only: bool  # under ``if TYPE_CHECKING:``


def module_files(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``package`` (``__init__`` = package)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = [package.name, *path.relative_to(package).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(
    node: ast.AST, type_only: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under ``node`` (any depth: functions, classes, try blocks)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, type_only
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _import_nodes(ast.Module(body=[stmt], type_ignores=[]), True)
            for stmt in child.orelse:
                yield from _import_nodes(ast.Module(body=[stmt], type_ignores=[]), type_only)
        else:
            yield from _import_nodes(child, type_only)


def _resolve(name: str, known: Iterable[str]) -> str | None:
    """The longest known module that ``name`` is or lies in; None outside the package."""
    parts = name.split(".")
    known_set = set(known)
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in known_set:
            return candidate
    return None


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> list[str]:
    """Modules of the package an import statement loads (``from X import sub`` -> ``X.sub``)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            anchor = package[: len(package) - (node.level - 1)]
            base = ".".join([*anchor, *([base] if base else [])])
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    return [t for t in (_resolve(n, known) for n in names) if t is not None]


def read_imports(package: Path) -> list[Import]:
    """Every import of a package module by a package module, module-level and function-level."""
    files = module_files(package)
    known = set(files)
    found = set()
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, type_only in _import_nodes(tree):
            for target in _targets(node, module, path.name == "__init__.py", known):
                if target != module:
                    found.add(Import(module, target, node.lineno, type_only))
    return sorted(found, key=lambda i: (i.source, i.line, i.target))


def area(module: str) -> str:
    """The package (or top-level module's stand-in) whose layer ``module`` belongs to."""
    parts = module.split(".")
    if len(parts) == 1:
        return ROOT
    return TOP_LEVEL_AREA.get(parts[1], parts[1]) if len(parts) == 2 else parts[1]


def layer_of(name: str) -> int | None:
    """0 for the top layer (cli) and up going down; the root package below all; None: unmapped."""
    if name == ROOT:
        return len(LAYERS)
    return next((i for i, names in enumerate(LAYERS) if name in names), None)


def layer_violations(imports: Iterable[Import], files: Mapping[str, Path]) -> list[str]:
    """Upward imports, forbidden same-layer leaks, unmapped packages, package cycles in a layer."""
    out = []
    edges: dict[tuple[str, str], Import] = {}
    for imp in imports:
        src, dst = area(imp.source), area(imp.target)
        if src == dst:
            continue
        where = f"{_rel(files[imp.source])}:{imp.line}: {imp.source} -> {imp.target}"
        src_layer, dst_layer = layer_of(src), layer_of(dst)
        if src_layer is None or dst_layer is None:
            out.append(f"{where}: package {src if src_layer is None else dst!r} is in no layer")
        elif dst_layer < src_layer:
            out.append(f"{where}: upward ({src} is below {dst})")
        elif (src, dst) in FORBIDDEN:
            out.append(f"{where}: {src} may not import {dst} (issue 9 leak)")
        edges.setdefault((src, dst), imp)
    for group in strongly_connected({a: {b for (x, b) in edges if x == a} for (a, _) in edges}):
        pairs = [edges[a, b] for a in group for b in group if (a, b) in edges]
        lines = ", ".join(f"{i.source} -> {i.target} ({_rel(files[i.source])}:{i.line})" for i in pairs)
        out.append(f"package cycle {' <-> '.join(sorted(group))}: {lines}")
    return out


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Groups of two or more nodes that reach each other (Tarjan), each sorted, sorted by first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    nodes = sorted(set(graph) | {b for bs in graph.values() for b in bs})

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in nodes:
        if v not in index:
            visit(v)
    return sorted(groups)


def cycle_violations(imports: Iterable[Import], files: Mapping[str, Path]) -> list[str]:
    """Module import cycles (imports that run: function-level included, TYPE_CHECKING excluded)."""
    runtime = [i for i in imports if not i.type_only]
    graph: dict[str, set[str]] = {}
    for i in runtime:
        graph.setdefault(i.source, set()).add(i.target)
    out = []
    for group in strongly_connected(graph):
        members = set(group)
        inside = [i for i in runtime if i.source in members and i.target in members]
        lines = ", ".join(f"{i.source} -> {i.target} ({_rel(files[i.source])}:{i.line})" for i in inside)
        out.append(f"cycle of {len(group)} modules: {lines}")
    return out


def long_files(files: Mapping[str, Path], limit: int = MAX_FILE_LINES) -> list[str]:
    """Files over ``limit`` lines."""
    counts = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in files.values()}
    return [f"{_rel(p)}: {n} lines (limit {limit})" for p, n in sorted(counts.items()) if n > limit]


def long_functions(files: Mapping[str, Path], limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Functions and methods (nested ones too) over ``limit`` lines, decorators excluded."""
    out = []
    for path in sorted(files.values()):
        for qualname, node in _functions(ast.parse(path.read_text(encoding="utf-8"))):
            n = (node.end_lineno or node.lineno) - node.lineno + 1
            if n > limit:
                out.append(f"{_rel(path)}:{node.lineno} {qualname}: {n} lines (limit {limit})")
    return out


def _functions(
    node: ast.AST, prefix: str = ""
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + child.name, child
            yield from _functions(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        else:
            yield from _functions(child, prefix)


def _rel(path: Path) -> str:
    """``lsmseg/...`` part of a path (the package may sit anywhere, e.g. in a test's tmp_path)."""
    parts = path.parts
    start = max(i for i, part in enumerate(parts) if part == ROOT)
    return "/".join(parts[start:])


def _report(what: str, violations: list[str]) -> None:
    if violations:
        pytest.fail(f"{len(violations)} {what}:\n" + "\n".join(violations), pytrace=False)


# --- the tree -----------------------------------------------------------------------------------
FILES = module_files(PACKAGE)


def test_every_import_follows_the_layers() -> None:
    _report("layer violation(s)", layer_violations(read_imports(PACKAGE), FILES))


def test_no_import_cycle_between_modules() -> None:
    _report("import cycle(s)", cycle_violations(read_imports(PACKAGE), FILES))


def test_no_file_over_500_lines() -> None:
    _report("file(s) too long", long_files(FILES))


def test_no_function_over_60_lines() -> None:
    _report("function(s) too long", long_functions(FILES))


# --- the checker, on a package with known answers -----------------------------------------------
def _write(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "lsmseg"


def test_the_reader_finds_every_kind_of_import(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "lsmseg/__init__.py": "",
            "lsmseg/keys.py": "",
            "lsmseg/io/__init__.py": "from . import dicom\n",
            "lsmseg/io/dicom.py": "from lsmseg.keys import X\nfrom .. import keys\n",
            "lsmseg/io/quality.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lsmseg.readout import a\n"
                "def f():\n    from lsmseg.transforms.body import crop\n    import lsmseg.io.dicom\n"
            ),
            "lsmseg/readout/__init__.py": "",
            "lsmseg/readout/a.py": "",
            "lsmseg/transforms/__init__.py": "",
            "lsmseg/transforms/body.py": "from lsmseg.io import quality\n",
            "lsmseg/cli/__init__.py": "",
        },
    )
    imports = read_imports(package)
    assert {(i.source, i.target, i.line, i.type_only) for i in imports} == {
        ("lsmseg.io", "lsmseg.io.dicom", 1, False),
        ("lsmseg.io.dicom", "lsmseg.keys", 1, False),
        ("lsmseg.io.dicom", "lsmseg.keys", 2, False),
        ("lsmseg.io.quality", "lsmseg.readout.a", 3, True),
        ("lsmseg.io.quality", "lsmseg.transforms.body", 5, False),
        ("lsmseg.io.quality", "lsmseg.io.dicom", 6, False),
        ("lsmseg.transforms.body", "lsmseg.io.quality", 1, False),
    }
    files = module_files(package)
    layers = layer_violations(imports, files)
    assert [v.split(": ", 1)[1] for v in layers[:2]] == [
        "lsmseg.io.quality -> lsmseg.readout.a: io may not import readout (issue 9 leak)",
        "lsmseg.io.quality -> lsmseg.transforms.body: io may not import transforms (issue 9 leak)",
    ]
    assert len(layers) == 3 and layers[2].startswith("package cycle io <-> transforms")
    cycles = cycle_violations(imports, files)
    assert len(cycles) == 1 and cycles[0].startswith(
        "cycle of 2 modules: lsmseg.io.quality -> lsmseg.transforms.body"
    )


def test_upward_and_unmapped_imports_are_named(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "lsmseg/__init__.py": "",
            "lsmseg/segment.py": "from lsmseg.cli import main\n",
            "lsmseg/cli/__init__.py": "",
            "lsmseg/cli/main.py": "import lsmseg\nfrom lsmseg.extras import x\nfrom lsmseg.sweep import run\n",
            "lsmseg/extras/__init__.py": "",
            "lsmseg/extras/x.py": "",
            "lsmseg/sweep.py": "",
        },
    )
    got = [v.split(": ", 1)[1] for v in layer_violations(read_imports(package), module_files(package))]
    assert got == [
        "lsmseg.cli.main -> lsmseg.extras.x: package 'extras' is in no layer",
        "lsmseg.segment -> lsmseg.cli.main: upward (clinical is below cli)",
    ]


def test_sizes_are_measured_without_decorators(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(59))  # 59 lines: a 60-line function
    method = "".join(f"        x{i} = {i}\n" for i in range(59))
    package = _write(
        tmp_path,
        {
            "lsmseg/__init__.py": "",
            "lsmseg/a.py": f"@dec\ndef ok():\n{body}\nclass C:\n    def long(self):\n{method}",
        },
    )
    files = module_files(package)
    assert long_functions(files) == []
    assert long_functions(files, limit=59) == [
        "lsmseg/a.py:2 ok: 60 lines (limit 59)",
        "lsmseg/a.py:64 C.long: 60 lines (limit 59)",
    ]
    assert long_files(files, limit=123) == [] and long_files(files, limit=122) == [
        "lsmseg/a.py: 123 lines (limit 122)"
    ]
