"""Every setting says why its default is what it is, in docs/design.md §11."""

from pathlib import Path

from controller import settings

DESIGN = Path(__file__).resolve().parents[2] / "docs" / "design.md"


def test_every_overridable_setting_is_explained_in_the_design():
    text = DESIGN.read_text()
    section = text[text.index("### Waits and intervals"):text.index("## 12.")]
    missing = sorted(name for name in settings.overridable() if f"`{name}`" not in section)
    assert not missing, f"docs/design.md §11 does not say why these defaults are what they are: {missing}"
