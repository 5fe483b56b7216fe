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
