"""The built documentation (``python -m sphinx -W -b html docs docs/_build/html``, which CI runs
before the tests): every gallery example has its page showing the figures it drew, the spec
reference lists every option of every schema, and the plugin guide every hook and Rule method.
Skipped, saying so, where the documentation has not been built."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
HTML = REPO / "docs" / "_build" / "html"
GALLERY = REPO / "examples" / "gallery"

pytestmark = pytest.mark.skipif(
    not (HTML / "index.html").exists(),
    reason="docs not built: run 'python -m sphinx -W -b html docs docs/_build/html' (CI does, before the tests)")


class Page(HTMLParser):
    """The <img> sources and the text of one HTML page."""

    def __init__(self, path: Path):
        super().__init__()
        self.images: list[str] = []
        self.text: list[str] = []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs).get("src", ""))

    def handle_data(self, data):
        self.text.append(data)

    @property
    def words(self) -> str:
        return " ".join("".join(self.text).split())


def gallery_scripts() -> list[Path]:
    return sorted(GALLERY.glob("plot_*.py"))


def test_the_gallery_has_examples():
    assert len(gallery_scripts()) >= 8


@pytest.mark.parametrize("script", gallery_scripts(), ids=lambda p: p.stem)
def test_every_gallery_page_shows_the_figures_its_example_drew(script):
    page_path = HTML / "auto_examples" / f"{script.stem}.html"
    assert page_path.exists(), f"{script.name} has no page in the built docs"
    page = Page(page_path)
    figures = [src for src in page.images if re.search(rf"sphx_glr_{re.escape(script.stem)}_\d{{3}}\.png$", src)]
    assert figures, f"{page_path.name} shows no figure drawn by {script.name} (images: {page.images})"
    for src in figures:
        image = (page_path.parent / unquote(src)).resolve()
        assert image.is_file() and image.stat().st_size > 1000, f"{src} is missing or empty on disk"
    index = Page(HTML / "auto_examples" / "index.html")
    assert any(script.stem in src for src in index.images), f"{script.stem} has no thumbnail in the gallery index"


def test_the_spec_reference_lists_every_option_of_every_schema():
    from plasticity_kit import spec
    from plasticity_kit.plugins import registry

    words = Page(HTML / "spec_reference.html").words
    for section, schema in (("schedule", spec.SCHEDULE), ("model", spec.MODEL), ("record", spec.RECORD),
                            ("output", spec.OUTPUT)):
        for option in schema:
            assert f"{section}.{option.name}" in words, f"{section}.{option.name} missing from the spec reference"
            assert option.expected() in words
    reg = registry()
    for kind in reg.kinds.values():
        for name in kind:
            for option in kind.classes[name].options:
                assert f".params.{option.name}" in words or option.name in words, (kind.kind, name, option.name)


def test_the_spec_reference_lists_the_layered_model_and_every_stage_with_its_options():
    from plasticity_kit.model import stack
    from plasticity_kit.model.stages import STAGES
    from plasticity_kit.plugins import summary

    words = Page(HTML / "spec_reference.html").words
    for prefix, schema in (("model", stack.LAYERED), ("model.layers[i].conv", stack.CONV),
                           ("model.layers[i]", [stack.N_NEURONS])):
        for option in schema:
            assert f"{prefix}.{option.name}" in words, f"{prefix}.{option.name} missing from the spec reference"
            assert option.expected() in words
    starts = [words.index(" ".join(summary(cls).split())) for cls in STAGES.values()]
    starts.append(words.index("Learning rules", starts[-1]))
    for (name, cls), start, end in zip(STAGES.items(), starts, starts[1:]):
        section = words[start:end]  # from the stage's description to the next stage's
        for option in cls.options:
            assert f"model.layers[i].params.{option.name} {option.expected()}" in section, (name, option.name)


def test_the_plugin_guide_lists_every_hook_rule_method_and_option_kind():
    from plasticity_kit import hookspecs
    from plasticity_kit.options import KINDS
    from plasticity_kit.plugins import KINDS as HOOKS

    words = Page(HTML / "plugin_guide.html").words
    for hook in HOOKS.values():
        assert hasattr(hookspecs, hook) and f"{hook}(register)" in words, hook
    for method in ("init_state", "step", "run_steps", "end_epoch", "transform", "synthesize", "divergence"):
        assert re.search(rf"\b{method}\(", words), method
    for kind in KINDS:
        assert kind in words
