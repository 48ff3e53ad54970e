"""Sphinx configuration of the plasticity-kit documentation.

Build (from the repository root, after ``pip install -e ".[docs]"``)::

    python -m sphinx -W -b html docs docs/_build/html

The gallery (``examples/gallery/plot_*.py``) is executed by the build; MNIST examples read the
IDX files from ``$PLASTICITY_KIT_MNIST`` or ``$PLASTICITY_KIT_SHARED_DATA/mnist`` (else the
package's download cache).
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

os.environ.setdefault("MPLBACKEND", "Agg")
shared = os.environ.get("PLASTICITY_KIT_SHARED_DATA")
if shared and "PLASTICITY_KIT_MNIST" not in os.environ and (Path(shared) / "mnist").is_dir():
    os.environ["PLASTICITY_KIT_MNIST"] = str(Path(shared) / "mnist")

from plasticity_kit import __version__  # noqa: E402

project = "plasticity-kit"
author = "plasticity-kit developers"
copyright = "plasticity-kit developers"
release = version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx_gallery.gen_gallery",
    "spec_reference",
]

exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip",
                    "auto_examples/*.md5", "auto_examples/*.codeobj.json"]
templates_path = []
smartquotes = False  # keep the quotes of commands and values as typed
html_theme = "alabaster"
html_theme_options = {"description": "local learning rules, recorded", "fixed_sidebar": True,
                      "page_width": "1100px", "sidebar_width": "230px"}
html_static_path = []
html_title = f"plasticity-kit {release}"

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_preserve_defaults = True

sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples" / "gallery"),
    "gallery_dirs": str(HERE / "auto_examples"),
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "reset_modules": ("matplotlib",),
    "abort_on_example_error": True,
    "plot_gallery": "True",
}

# Pages written by other parts of the project: a placeholder while one is missing (never overwritten).
for page, title in (("study", "The study"), ("middle_neuron", "The middle neuron")):
    if not (HERE / f"{page}.rst").exists():
        (HERE / f"{page}.rst").write_text(f"{title}\n{'=' * len(title)}\n\nThis page is not written yet.\n")
