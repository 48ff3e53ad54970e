"""The plugin manager: built-ins go through the hooks, collisions and typos fail loudly."""
import pytest

from helpers import cli
from plasticity_kit.errors import PluginError
from plasticity_kit.hookspecs import hookimpl
from plasticity_kit.plugins import KINDS, build_registry
from plasticity_kit.rules.base import Rule


def test_builtins_are_registered_through_hooks():
    reg = build_registry(load_entry_points=False)
    assert "bcm" in reg.rules
    assert {"none", "uniform", "binocular", "custom"} <= set(reg.interactions)
    assert {"sgd", "momentum", "adam"} <= set(reg.optimizers)
    assert {"linear", "relu", "logistic", "tanh"} <= set(reg.activations)
    assert "olivetti" in reg.datasets and {"image_grid", "summary"} <= set(reg.exporters)
    assert reg.rules.owners["bcm"] == "plasticity_kit.default_plugins"


def test_a_plugin_object_adds_a_rule():
    class Hebb(Rule):
        """Plain Hebb."""
        name = "hebb_test"

    class Plugin:
        @hookimpl
        def register_rules(self, register):
            register(Hebb)

    reg = build_registry(load_entry_points=False, extra_plugins=[Plugin()])
    assert reg.rules.classes["hebb_test"] is Hebb


def test_name_collision_names_both_plugins():
    class Other(Rule):
        name = "bcm"

    class Plugin:
        @hookimpl
        def register_rules(self, register):
            register(Other)

    with pytest.raises(PluginError, match="registered twice"):
        build_registry(load_entry_points=False, extra_plugins=[Plugin()])


def test_misspelt_hook_fails_at_startup():
    class Plugin:
        @hookimpl
        def register_rulez(self, register):
            pass

    with pytest.raises(Exception, match="register_rulez"):
        build_registry(load_entry_points=False, extra_plugins=[Plugin()])


def test_plugins_command_lists_every_kind():
    out = cli("plugins")
    assert out.returncode == 0, out.stderr
    for kind in KINDS:
        if kind != "metrics":
            assert f" {kind} " in out.stdout
    assert "binocular" in out.stdout and "plasticity_kit.default_plugins" in out.stdout
