"""The house's floors: imports run one way (scenes2real -> evaluation -> vlm_train -> blender_scenes), no two
modules import each other (imports inside functions count), and the pure modules load without bpy or torch."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("blender_scenes", "evaluation", "vlm_train", "scenes2real")
# a package may import only itself and the packages listed for it
ALLOWED = {"blender_scenes": set(), "evaluation": {"vlm_train", "blender_scenes"}, "vlm_train": {"blender_scenes"},
           "scenes2real": {"blender_scenes", "evaluation", "vlm_train"}}
PURE = ["blender_scenes.plan", "blender_scenes.labels", "blender_scenes.questions", "blender_scenes.config",
        "blender_scenes.annotate", "blender_scenes.audit.run", "blender_scenes.dataset", "blender_scenes.cocofile",
        "blender_scenes.prompts", "evaluation.parse", "evaluation.coco", "evaluation.metrics", "evaluation.score",
        "evaluation.report", "vlm_train.export",
        # `evaluate --backend openai` needs no torch: a client of a server runs with the `openai` extra alone
        "evaluation.runner", "evaluation.parallel", "evaluation.backends.openai_backend",
        # exports for the Hub and the harnesses need datasets / pyarrow, never torch
        "vlm_train.export_hub", "evaluation.export_harness", "evaluation.benchmarks"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every module of the four packages -> the modules of ours it imports, anywhere in its body."""
    modules = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            else:
                continue
            for t in targets:   # the longest prefix that is one of our modules
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    deps.add(t)
        graph[name] = deps
    return graph


def test_packages_import_one_way():
    bad = [(m, d) for m, deps in import_graph().items() for d in deps
           if d.split(".")[0] != m.split(".")[0] and d.split(".")[0] not in ALLOWED[m.split(".")[0]]]
    assert bad == []


def test_no_module_imports_itself_through_others():
    graph = import_graph()
    # a package's __init__ importing its own modules is how a package exposes them, not a cycle
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_pure_modules_load_without_bpy_or_torch():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in PURE) +
            "print(sorted(m for m in ('bpy', 'torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr
