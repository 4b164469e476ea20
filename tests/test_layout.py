"""The shape of the code: imports run one way, no cycles, small files and functions, no TensorFlow in a job.

    formdigits (CLI) -> bench, model_export -> corpus -> pipeline -> serving

Every import is counted, those inside functions too.
"""

import pytest
import ast
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("formdigits", "bench", "model_export", "corpus", "pipeline", "serving")
# What each package may import from the project (itself included).
ALLOWED = {
    "formdigits": set(PACKAGES),
    "bench": {"bench", "corpus", "pipeline", "serving"},
    "model_export": {"model_export", "corpus", "pipeline", "serving"},
    "corpus": {"corpus", "pipeline"},
    "pipeline": {"pipeline", "serving"},
    "serving": {"serving"},
}
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 50


def _sources(include_tests: bool = False) -> list[pathlib.Path]:
    roots = PACKAGES + (("tests",) if include_tests else ())
    return sorted(p for root in roots for p in (ROOT / root).rglob("*.py"))


def _module(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> set[str]:
    """Project modules `path` imports, anywhere in the file."""
    found = set()
    package = _module(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in PACKAGES}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in _sources()}
    graph = {}
    for name, path in modules.items():
        # `from pipeline import schema` names the module pipeline.schema; `from pipeline.x import f` names pipeline.x.
        graph[name] = {m for m in _imports(path) if m in modules and m != name}
    return graph


def test_imports_run_one_way():
    wrong = [f"{_module(p)} imports {m}" for p in _sources() for m in sorted(_imports(p))
             if m.split(".")[0] not in ALLOWED[_module(p).split(".")[0]]]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_files_and_functions_are_small():
    big_files = [f"{p.relative_to(ROOT)}: {n} lines" for p in _sources(include_tests=True)
                 if (n := p.read_text().count("\n")) > MAX_FILE_LINES]
    long_functions = []
    for p in _sources():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert not big_files and not long_functions, "\n".join(big_files + long_functions)


# pipeline/ by stage, in the order a page goes through them; `templates` and the core serve them all.
STAGES = ("reading", "registration", "segmentation", "inference", "assembly", "output", "job")
ASIDE = {"templates": {"reading"},              # propose reads a colour blank as the read stage does
         "review": {"output", "assembly"}}      # the review app reads the store and shows field pictures
# Imports against the flow, each with its reason.
BACK_EDGES = {("inference", "job"): "the handler notes an outage in the run's progress files (job.progress)"}


def _part(module: str) -> str:
    """A pipeline module's package (reading, ..., templates, review), or "core" for pipeline's own modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else "core"


def _may_import(importer: str, imported: str) -> bool:
    if importer == imported or imported in ("core", "templates"):
        return True
    if importer in STAGES and imported in STAGES:
        return STAGES.index(imported) < STAGES.index(importer) or (importer, imported) in BACK_EDGES
    if importer == "core":
        return False
    return imported in ASIDE.get(importer, set())


def test_pipeline_stages_import_the_core_and_earlier_stages_only():
    graph = _graph()
    wrong = [f"{m} ({_part(m)}) imports {n} ({_part(n)})" for m, deps in sorted(graph.items())
             if m.startswith("pipeline.") for n in sorted(deps)
             if n.startswith("pipeline.") and not _may_import(_part(m), _part(n))]
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_another_packages_private_names():
    wrong = []
    for p in _sources():
        here = _module(p).rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                folder = (ROOT / node.module.replace(".", "/")).is_dir()
                there = node.module if folder else node.module.rsplit(".", 1)[0]
                wrong += [f"{_module(p)} imports {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and there != here]
    assert not wrong, "\n".join(wrong)


def test_each_pipeline_package_maps_its_modules_in_its_docstring():
    for init in sorted((ROOT / "pipeline").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        missing = [m.name for m in init.parent.glob("*.py") if m.name != "__init__.py" and m.name not in doc]
        assert doc and not missing, f"{init.relative_to(ROOT)} does not name {missing}"
    top = ast.get_docstring(ast.parse((ROOT / "pipeline" / "__init__.py").read_text())) or ""
    packages = [d.name for d in (ROOT / "pipeline").iterdir() if (d / "__init__.py").is_file()]
    assert all(f"{name}/" in top for name in packages), packages


@pytest.mark.slow
def test_a_run_imports_no_tensorflow(scans, server, tmp_path):
    """The driver and (in-memory) workers of `formdigits run` build requests without TensorFlow or Keras."""
    code = (
        "import sys\n"
        "from formdigits.cli import main\n"
        f"rc = main(['run', '--input', {str(scans / 'scan_00001*')!r}, '--templates', {str(scans / 'templates')!r},"
        f" '--output', {str(tmp_path / 'out')!r}, '--serving', {server.target!r},"
        " '--direct_running_mode=in_memory', '--direct_num_workers=1'])\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'tensorflow.python') if m in sys.modules)\n"
        "print('RC', rc, 'HEAVY', heavy)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert "RC 0 HEAVY []" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]


def test_the_cli_shows_every_commands_help_without_opencv_or_tensorflow():
    """Defaults and choices come from light modules (pipeline.defaults, model_export.choices): help is instant."""
    code = (
        "import contextlib, io, sys\n"
        "from formdigits.cli import main\n"
        "for command in ('run', 'train', 'synth-forms', 'review', 'export', 'bench', 'template'):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main([command, '--help'])\n"
        "print('HEAVY', sorted(m for m in ('cv2', 'tensorflow', 'keras', 'apache_beam') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "HEAVY []" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]


def test_public_docstrings_in_pipeline_start_with_what_the_function_does():
    """A verb phrase ("Returns ...", "Cuts ..."), so a reader knows what a call does before how."""
    wrong = []
    for p in sorted((ROOT / "pipeline").rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_") and ast.get_docstring(node):
                first = ast.get_docstring(node).split()[0].rstrip(",:")
                if not (first[0].isupper() and first.endswith("s") and first not in ("This", "Its", "Pages")):
                    wrong.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name}: {first}")
    assert not wrong, "\n".join(wrong)
