"""The plugin manager: built-ins and the ``plasticity_kit`` entry-point group, loaded once.

``registry()`` returns a :class:`Registry` with one :class:`Kind` per hook (``rules``,
``interactions``, ``activations``, ``optimizers``, ``initializers``, ``datasets``, ``exporters``, ``metrics``).
Two plugins registering the same name in the same kind is an error naming both.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

import pluggy

from . import hookspecs
from .errors import PluginError, SpecError
from .options import did_you_mean

ENTRY_POINT_GROUP = "plasticity_kit"

KINDS = {
    "rules": "register_rules",
    "interactions": "register_interactions",
    "activations": "register_activations",
    "optimizers": "register_optimizers",
    "initializers": "register_initializers",
    "datasets": "register_datasets",
    "exporters": "register_exporters",
    "metrics": "register_metrics",
    "executors": "register_executors",
}


@dataclass
class Kind:
    """All classes registered for one kind of plugin, by spec name."""

    kind: str
    classes: dict = field(default_factory=dict)
    owners: dict = field(default_factory=dict)

    def add(self, cls, owner: str) -> None:
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {owner!r} registered {cls!r} as one of the {self.kind} without a 'name'")
        if name in self.classes and self.classes[name] is not cls:
            raise PluginError(
                f"{self.kind[:-1]} name {name!r} is registered twice: by {self.owners[name]!r} and by {owner!r}"
            )
        self.classes[name] = cls
        self.owners[name] = owner

    def get(self, name: str, key: str):
        """The class registered as ``name``, or a SpecError at ``key`` listing what exists."""
        try:
            return self.classes[name]
        except (KeyError, TypeError):
            known = sorted(self.classes)
            hint = did_you_mean(str(name), known)
            raise SpecError(
                key, f"unknown {self.kind[:-1]} {name!r}{hint}; installed: {', '.join(known)}"
            ) from None

    def __contains__(self, name) -> bool:
        return name in self.classes

    def __iter__(self):
        return iter(sorted(self.classes))


@dataclass
class Registry:
    manager: pluggy.PluginManager
    kinds: dict

    def __getattr__(self, kind: str) -> Kind:
        try:
            return self.__dict__["kinds"][kind]
        except KeyError:
            raise AttributeError(kind) from None


def _plugin_name(manager: pluggy.PluginManager, plugin) -> str:
    return manager.get_name(plugin) or getattr(plugin, "__name__", repr(plugin))


def _import_entry_points() -> None:
    """Import every ``plasticity_kit`` entry point; a PluginError naming the one that fails (e.g. an
    ``Option`` of unknown kind) instead of a traceback from inside pluggy."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:
            raise PluginError(f"plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}") from exc


def build_registry(load_entry_points: bool = True, extra_plugins=()) -> Registry:
    """A fresh manager with the built-ins, entry-point plugins and ``extra_plugins`` registered."""
    from . import default_plugins

    manager = pluggy.PluginManager("plasticity_kit")
    manager.add_hookspecs(hookspecs)
    manager.register(default_plugins, name="plasticity_kit.default_plugins")
    if load_entry_points:
        _import_entry_points()
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in extra_plugins:
        manager.register(plugin)
    manager.check_pending()

    kinds = {kind: Kind(kind) for kind in KINDS}
    for kind, hook_name in KINDS.items():
        hook = getattr(manager.hook, hook_name)
        for impl in hook.get_hookimpls():
            owner = _plugin_name(manager, impl.plugin)
            impl.function(register=lambda cls, _k=kinds[kind], _o=owner: _k.add(cls, _o))
    return Registry(manager, kinds)


_REGISTRY: Registry | None = None


def registry() -> Registry:
    """The process-wide registry (built on first use)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry()
    return _REGISTRY


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")


def summary(cls) -> str:
    """The first sentence of ``cls``'s docstring, on one line, without reST markup
    (``plasticity-kit plugins`` shows it; a sentence may span several docstring lines)."""
    paragraph = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0]
    text = " ".join(paragraph.split()).replace("``", "")
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return _SENTENCE_END.split(text, maxsplit=1)[0]


def plugin_table(reg: Registry | None = None) -> list[tuple[str, str, str, str]]:
    """Rows (plugin, kind, name, first docstring sentence) for ``plasticity-kit plugins``."""
    reg = reg or registry()
    rows = []
    for kind_name, kind in reg.kinds.items():
        for name in kind:
            rows.append((kind.owners[name], kind_name, name, summary(kind.classes[name])))
    return sorted(rows)
