"""The tree shows the architecture: layers, one-way imports, a standard-library worker side."""

import ast
import re
import subprocess
import sys

import pytest

from helpers.core.paths import REPO_ROOT

HELPERS = REPO_ROOT / "helpers"

#: Lowest first. A module may import from its own layer and the layers below it, never above.
LAYERS = ("core", "tasks", "pool", "servers", "experiments", "bench", "view", "tools")

#: Everything a worker process (or a server process the course starts) imports lives here.
WORKER_SIDE = ("core", "tasks", "pool", "servers")
#: ...except these, which run in the parent only and say why.
PARENT_ONLY = {
    "helpers.pool.joblib_backend": "the bridge to joblib: it needs joblib (and cloudpickle) "
                                   "on both sides, as joblib's own backends do",
}


def module_name(path):
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def helpers_modules(folders=LAYERS):
    for folder in folders:
        for path in sorted((HELPERS / folder).rglob("*.py")):
            if path.name != "__main__.py":
                yield module_name(path), path


def imported_helpers_modules(path, module):
    """Every ``helpers.…`` module a file imports, at the top or inside a function."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("helpers"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                imported = ".".join(base + ([node.module] if node.module else []))
            else:
                imported = node.module or ""
            if imported == "helpers" or (imported.startswith("helpers.")
                                         and imported.count(".") == 1):
                # ``from helpers.view import plots``: the names are modules of that package
                yield from (f"{imported}.{alias.name}" for alias in node.names)
            elif imported.startswith("helpers."):
                yield imported


def layer_of(module):
    """``helpers.view.plots`` -> ``view``; the package itself (``helpers``) -> ``None``."""
    return module.split(".")[1] if module.count(".") else None


def test_helpers_has_at_most_twelve_top_level_entries():
    entries = [p.name for p in HELPERS.iterdir() if p.name != "__pycache__"]
    assert len(entries) <= 12, sorted(entries)
    assert set(LAYERS) <= set(entries)


def test_every_module_belongs_to_a_layer():
    loose = [p.name for p in HELPERS.glob("*.py") if p.name != "__init__.py"]
    assert loose == [], f"modules outside the layers: {loose}"


def upward_imports(module, path):
    """The imports in ``path`` (module ``module``) that reach a higher layer."""
    mine = LAYERS.index(layer_of(module))
    found = []
    for imported in imported_helpers_modules(path, module):
        theirs = layer_of(imported)
        if theirs not in LAYERS:
            found.append(f"{module} imports the top-level package's {imported}")
        elif LAYERS.index(theirs) > mine:
            found.append(f"{module} ({LAYERS[mine]}) imports {imported} ({theirs})")
    return found


def test_imports_run_down_the_layers_only():
    upward = [line for module, path in helpers_modules() for line in upward_imports(module, path)]
    assert upward == [], "imports running back up the layers:\n" + "\n".join(upward)


def test_the_layer_test_catches_an_upward_import(tmp_path):
    """The check is not vacuous: a core module importing a view module, even inside a function."""
    fake = tmp_path / "bad.py"
    fake.write_text("from helpers.core import config\n\ndef f():\n    from ..view import plots\n")
    assert upward_imports("helpers.core.bad", fake) == [
        "helpers.core.bad (core) imports helpers.view.plots (view)"]


WORKER_MODULES = [name for name, _ in helpers_modules(WORKER_SIDE) if name not in PARENT_ONLY]


@pytest.mark.parametrize("module", WORKER_MODULES)
def test_worker_side_module_imports_only_the_standard_library(module):
    """Imported in a fresh interpreter, as a spawned worker imports it."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        f"import {module}\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "third = sorted(new - set(sys.stdlib_module_names) - {'helpers', '__mp_main__'})\n"
        "print(','.join(third))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "", f"{module} imported third-party packages: {run.stdout}"


def test_the_worker_side_list_is_not_empty_and_excludes_only_named_modules():
    assert len(WORKER_MODULES) >= 20
    assert "helpers.pool.parent" in WORKER_MODULES and "helpers.tasks.faults" in WORKER_MODULES
    for module in PARENT_ONLY:
        assert (REPO_ROOT / (module.replace(".", "/") + ".py")).exists()


def module_references():
    """Every ``python -m helpers.…`` and gunicorn ``helpers.…:app`` named in the repository."""
    texts = [p for p in REPO_ROOT.glob("*.md")] + [REPO_ROOT / "Makefile"]
    texts += sorted(REPO_ROOT.glob("data/*.md")) + sorted(REPO_ROOT.glob("notebooks/*.ipynb"))
    texts += sorted(HELPERS.rglob("*.py")) + sorted((REPO_ROOT / "tests").glob("*.py"))
    found = set()
    for path in texts:
        text = path.read_text()
        found |= set(re.findall(r"-m (helpers(?:\.\w+)+)", text))
        found |= set(re.findall(r"\"-m\", \"(helpers(?:\.\w+)+)\"", text))
        found |= set(re.findall(r"(helpers(?:\.\w+)+):\w+", text))
    return sorted(found)


def test_every_module_named_on_a_command_line_exists():
    references = module_references()
    assert "helpers.bench" in references and "helpers.servers.demo_app" in references
    missing = [name for name in references
               if not (REPO_ROOT / name.replace(".", "/")).is_dir()
               and not (REPO_ROOT / (name.replace(".", "/") + ".py")).exists()]
    assert missing == [], f"commands name modules that do not exist: {missing}"
