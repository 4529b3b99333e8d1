"""The project's imports form no cycle, between modules or between its packages.

Read with `ast`, so that an import inside a function counts as much as one at the top of a
module: a cycle hidden in a function still ties two modules into one idea. The arrow between
the packages is callbacks -> ladder_vae; the commands (train.py, evaluate.py, explore.py) sit
above both.
"""

import ast
import pathlib

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("ladder_vae", "callbacks")
COMMANDS = ("train.py", "evaluate.py", "explore.py")


def module_files(root):
    """{dotted module name: path} of the packages and commands under `root`."""
    root = pathlib.Path(root)
    files = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = path
    for command in COMMANDS:
        if (root / command).exists():
            files[command[: -len(".py")]] = root / command
    return files


def imported_modules(name, path, known):
    """The modules of `known` that module `name` (at `path`) imports, anywhere in its code.

    `from package import name` counts as an import of `package.name` when that is a module,
    else of `package`. A submodule's implicit import of its parent package is not counted:
    every package whose `__init__` gathers its modules would otherwise be a cycle.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            # `import a.b.c` binds a package path; count the deepest module of it we have.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root):
    files = module_files(root)
    return {name: imported_modules(name, path, files) for name, path in files.items()}


def package_graph(graph):
    """The packages' graph: an edge where a module of one imports a module of another."""
    edges = {}
    for module, targets in graph.items():
        source = module.split(".")[0]
        for target in targets:
            destination = target.split(".")[0]
            if source != destination:
                edges.setdefault(source, set()).add(destination)
    return edges


def find_cycle(graph):
    """One cycle of `graph` ({node: set of nodes}) as a list of nodes, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return path[path.index(target) :] + [target]
            if target not in state:
                cycle = visit(target, path + [target])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [node])
            if cycle:
                return cycle
    return None


def test_no_module_imports_itself_through_others():
    cycle = find_cycle(import_graph(REPO_ROOT))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_packages_import_in_one_direction():
    graph = package_graph(import_graph(REPO_ROOT))
    cycle = find_cycle(graph)
    assert cycle is None, "packages import each other: " + " -> ".join(cycle)
    assert "ladder_vae" in graph.get("callbacks", set())
    assert "callbacks" not in graph.get("ladder_vae", set())


def write_package(root, modules):
    for name, source in modules.items():
        path = root.joinpath(*name.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)


@pytest.mark.parametrize(
    "modules, cycle",
    [
        # Hidden in a function, as the ones this test was written against were.
        (
            {
                "ladder_vae.__init__": "",
                "ladder_vae.a": "from ladder_vae import b\n",
                "ladder_vae.b": "def later():\n    from ladder_vae.a import thing\n",
            },
            ["ladder_vae.a", "ladder_vae.b", "ladder_vae.a"],
        ),
        # Relative imports, three modules round.
        (
            {
                "ladder_vae.__init__": "",
                "ladder_vae.x": "from . import y\n",
                "ladder_vae.y": "from .z import f\n",
                "ladder_vae.z": "import ladder_vae.x\n",
            },
            ["ladder_vae.x", "ladder_vae.y", "ladder_vae.z", "ladder_vae.x"],
        ),
    ],
)
def test_a_cycle_between_modules_is_found(tmp_path, modules, cycle):
    assert find_cycle(import_graph(tmp_path)) is None
    write_package(tmp_path, modules)
    assert find_cycle(import_graph(tmp_path)) == cycle


def test_a_cycle_between_packages_is_found(tmp_path):
    write_package(
        tmp_path,
        {
            "ladder_vae.__init__": "",
            "ladder_vae.training": "def run():\n    import callbacks\n",
            "ladder_vae.atomic": "",
            "callbacks.__init__": "from callbacks.backup import Backup\n",
            "callbacks.backup": "from ladder_vae.atomic import atomic_path\n",
        },
    )
    graph = import_graph(tmp_path)
    assert find_cycle(graph) is None  # No module cycle: the packages' cycle is the finding.
    assert find_cycle(package_graph(graph)) == ["callbacks", "ladder_vae", "callbacks"]
