"""The package's import structure: no cycles, utilities below the models.

Dependencies are read from the source (every `import`, also those inside
functions, counts) and importing `a.b.c` counts as importing the packages
`a` and `a.b` too, as Python runs their `__init__` first.
"""

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "keras_unilmv2"

# Sub-packages that hold library building blocks and may not reach up into
# the models, layers, samplers or the applications built on them.
LOW_LEVEL = ("utils", "metrics", "datasets")
HIGH_LEVEL = ("models", "layers", "samplers", "pretraining", "recipes", "conversion")


def _modules(root=REPO):
    modules = {}
    for directory, dirs, files in os.walk(os.path.join(root, PACKAGE)):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                module = os.path.relpath(path, root)[: -len(".py")].replace(os.sep, ".")
                if module.endswith(".__init__"):
                    module = module[: -len(".__init__")]
                modules[module] = path
    return modules


def import_graph(root=REPO):
    """module -> set of package modules it imports (with parent packages)."""
    modules = _modules(root)
    graph = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        is_package = path.endswith("__init__.py")
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = module.split(".")[: None if is_package else -1]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                for alias in node.names:
                    if f"{base}.{alias.name}" in modules:
                        targets.add(f"{base}.{alias.name}")
                    elif base in modules:
                        targets.add(base)
        for target in list(targets):
            parts = target.split(".")
            for i in range(2, len(parts)):
                parent = ".".join(parts[:i])
                if parent in modules and not module.startswith(parent + "."):
                    targets.add(parent)
        targets.discard(module)
        graph[module] = targets
    return graph


def find_cycles(graph):
    """Strongly connected components of more than one module."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def _area(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, f"import cycles: {cycles}"


def test_low_level_modules_do_not_import_models_or_applications():
    wrong = {
        module: sorted(t for t in targets if _area(t) in HIGH_LEVEL)
        for module, targets in import_graph().items()
        if _area(module) in LOW_LEVEL
    }
    wrong = {m: t for m, t in wrong.items() if t}
    assert not wrong, f"low-level modules importing models/applications: {wrong}"


def test_the_checks_find_a_planted_cycle(tmp_path):
    # The two tests above must be able to fail: plant a package with a
    # cycle through a package `__init__` and a utility importing a model.
    package = tmp_path / PACKAGE
    (package / "models").mkdir(parents=True)
    (package / "utils").mkdir()
    (package / "__init__.py").write_text("")
    (package / "models" / "__init__.py").write_text(
        "from keras_unilmv2.models.backbone import Backbone\n"
    )
    (package / "models" / "backbone.py").write_text(
        "from keras_unilmv2.utils.presets import PresetMixin\n"
    )
    (package / "utils" / "__init__.py").write_text("")
    (package / "utils" / "presets.py").write_text(
        "def load():\n    from keras_unilmv2.models.registry import NAMES\n"
    )
    (package / "models" / "registry.py").write_text("NAMES = []\n")
    graph = import_graph(tmp_path)
    assert "keras_unilmv2.models" in graph["keras_unilmv2.utils.presets"]
    cycles = find_cycles(graph)
    assert cycles == [
        [
            "keras_unilmv2.models",
            "keras_unilmv2.models.backbone",
            "keras_unilmv2.utils.presets",
        ]
    ]
