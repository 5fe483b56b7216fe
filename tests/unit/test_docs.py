"""The docs stay true to the code: every controller module is in controller/README.md's table, and each
contract has one copy."""

from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_every_controller_module_is_described():
    table = (ROOT / "controller" / "README.md").read_text()
    modules = {p.relative_to(ROOT / "controller").as_posix() for p in (ROOT / "controller").rglob("*.py")
               if p.name != "__init__.py" or p.parent.name == "spec"}
    missing = sorted(m for m in modules if f"`{m}`" not in table)
    assert not missing, f"controller/README.md does not describe {missing}"


def test_the_state_diagram_and_the_failure_table_have_one_copy_each():
    diagram = "Pending --> Provisioning(sizes)"
    table = "| strategy | what ended | cause | action |"
    texts = {p.relative_to(ROOT).as_posix(): p.read_text() for p in [*ROOT.glob("*.md"), *ROOT.glob("docs/*.md"),
                                                                    *ROOT.glob("controller/**/*.md"),
                                                                    *ROOT.glob("controller/**/*.py")]}
    assert [name for name, text in texts.items() if diagram in text] == ["docs/design.md"]
    assert [name for name, text in texts.items() if table in text] == ["controller/machine/failure_policy.py"]


def deprecated_keras_callbacks() -> set[str]:
    """The classes of workers/keras.py that warn they are deprecated (their docstring says so first)."""
    import ast

    tree = ast.parse((ROOT / "workers" / "keras.py").read_text())
    return {node.name for node in tree.body if isinstance(node, ast.ClassDef)
            and (ast.get_docstring(node) or "").startswith("Deprecated")}


def test_the_docs_recommend_no_deprecated_callback():
    deprecated = deprecated_keras_callbacks()
    assert deprecated  # ControllerCallback and PreemptionCallback: this test looks at something
    for path in [ROOT / "README.md", *ROOT.glob("docs/*.md")]:
        named = sorted(name for name in deprecated if name in path.read_text())
        assert not named, f"{path.relative_to(ROOT)} tells users to use {named}: use workers.keras.JobCallback(ctx)"


def test_the_readme_runs_tfray_and_says_how_to_put_it_on_the_path():
    """`python -m controller` with the system Python is a ModuleNotFoundError; the README's commands are `tfray`,
    and before the first of them it says how `tfray` gets on the PATH."""
    import re

    readme = (ROOT / "README.md").read_text()
    python_m = [line for line in readme.splitlines() if re.search(r"(^|`)\s*python -m controller\b", line)]
    assert not python_m, f"README.md runs the CLI as python -m controller: {python_m}"
    first = readme.index("\ntfray ")
    assert ". .venv/bin/activate" in readme[:first] and ".venv/bin/tfray" in readme[:first]
