"""Sphinx extension: ``.. spec-reference::`` renders every spec key from the option schemas.

The tables are built at docs-build time from the very :class:`~plasticity_kit.options.Schema`
objects the spec validator uses (``spec.SCHEDULE``, ``spec.MODEL``, ``spec.RECORD``,
``spec.OUTPUT``, ``sweep.SWEEP_OPTIONS``, a layered model's ``model.stack.LAYERED`` and ``CONV``,
every stage of ``model.stages.STAGES`` and every installed plugin's ``options``), so the
reference cannot drift from the code.  ``.. plugin-hooks::`` lists the hooks of
:mod:`plasticity_kit.hookspecs` the same way.
"""
from __future__ import annotations

import inspect
import re

import yaml
from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from sphinx.util.nodes import nested_parse_with_titles

KIND_TITLES = {
    "rules": ("Learning rules", "model.rule", "model.rule.params"),
    "interactions": ("Interaction matrices", "model.interaction", "model.interaction.params"),
    "activations": ("Activations", "model.activation", "model.activation.params"),
    "optimizers": ("Optimizers", "model.optimizer", "model.optimizer.params"),
    "initializers": ("Initializers", "model.initializer", "model.initializer.params"),
    "datasets": ("Data sets", "data", "data.params"),
    "exporters": ("Exporters", "exporters[i]", "exporters[i].params"),
    "metrics": ("Metrics", "metrics[i]", "metrics[i].params"),
    "executors": ("Sweep executors", "--executor", "(set from the command line)"),
}


def escape(text: str) -> str:
    """Plain text made safe inside reStructuredText (no markup is interpreted)."""
    text = " ".join(str(text).split())
    return re.sub(r"([\\`*_|\[\]<>])", r"\\\1", text)


def literal(value) -> str:
    """``value`` as an inline literal (YAML spelling: null, true, lists in brackets)."""
    if isinstance(value, str):
        text = repr(value) if value == "" or value.strip() != value else value
    else:
        text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip()
        text = text[:-4].strip() if text.endswith("\n...") or text.endswith(" ...") else text
        text = text.removesuffix("...").strip()
    text = " ".join(text.split())
    return f"``{text}``" if "`" not in text else escape(text)


def first_sentence(cls) -> str:
    from plasticity_kit.plugins import summary

    return summary(cls)


def option_table(schema, prefix: str) -> list[str]:
    options = list(schema)
    if not options:
        return ["No options.", ""]
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 22 30 16 32", "",
             "   * - key", "     - accepts", "     - default", "     - meaning"]
    for opt in options:
        default = "required" if opt.required else literal(opt.default)
        lines += [f"   * - ``{prefix}.{opt.name}``" if prefix else f"   * - ``{opt.name}``",
                  f"     - {escape(opt.expected())}",
                  f"     - {default}",
                  f"     - {escape(opt.doc) or '-'}"]
    return lines + [""]


def heading(text: str, char: str) -> list[str]:
    return [text, char * len(text), ""]


def plugin_sections(reg, kind: str) -> list[str]:
    title, where, params_key = KIND_TITLES[kind]
    group = reg.kinds[kind]
    lines = heading(title, "-")
    lines += [f"Named at ``{where}`` (a name, or ``{{name: ..., params: {{...}}}}``); installed: "
              + ", ".join(f"``{n}``" for n in group) + ".", ""]
    for name in group:
        cls = group.classes[name]
        lines += heading(name, "~")
        owner = group.owners[name]
        lines += [escape(first_sentence(cls)) + (f" (plugin ``{owner}``)" if owner != "plasticity_kit.default_plugins"
                                                else ""), ""]
        if kind == "rules":
            uses = ", ".join(f"``{u}``" + (f" (default ``{cls.defaults[u]}``)" if u in cls.defaults else "")
                             for u in cls.uses) or "none"
            fields = "; ".join(f"``{f}``: {escape(d)}" for f, d in cls.fields.items())
            lines += [f"Components: {uses}.", "", f"Recordable fields (``record.fields``): {fields}.", "",
                      "Recorded by default: " + ", ".join(f"``{f}``" for f in cls.default_record) + ".", ""]
        lines += option_table(cls.options, params_key if kind != "executors" else "")
    return lines


def model_layers_section() -> list[str]:
    """``model.layers``: a learned layer's keys and ``conv`` options, the layered model's own options."""
    from plasticity_kit.model import stack

    lines = heading("model.layers", "~")
    lines += ["A layered model lists ``model.layers`` instead of ``model.rule`` (see :doc:`layered`). Each entry is a "
              "learned layer — ``rule`` (a learning rule below, a name or ``{name, params}``), ``n_neurons``, "
              "``conv`` to apply it to every k×k patch (weights tied across positions; without it the rule sees the "
              "whole input) and the components its rule uses — or a non-learned stage ``{stage: NAME, params: "
              "{...}}`` (see Stages below).", ""]
    lines += option_table([stack.N_NEURONS], "model.layers[i]")
    lines += option_table(stack.CONV, "model.layers[i].conv")
    lines += ["Besides ``layers``, a layered ``model`` section takes:", ""]
    return lines + option_table(stack.LAYERED, "model")


def stage_sections() -> list[str]:
    """Every stage of :data:`plasticity_kit.model.stages.STAGES` with its options."""
    from plasticity_kit.model.stages import STAGES

    lines = heading("Stages", "-")
    lines += ["Non-learned stages between the learned layers of ``model.layers``, named at "
              "``model.layers[i].stage``: " + ", ".join(f"``{n}``" for n in STAGES) + ".", ""]
    for name, cls in STAGES.items():
        lines += heading(name, "~") + [escape(first_sentence(cls)), ""]
        if cls.fields:
            lines += ["State (recorded as ``layers/<i>/<field>``): "
                      + "; ".join(f"``{f}``: {escape(d)}" for f, d in cls.fields.items()) + ".", ""]
        lines += option_table(cls.options, "model.layers[i].params")
    return lines


def parse(state, lines: list[str], source: str) -> list:
    """The nodes of generated reStructuredText ``lines`` (section titles allowed)."""
    node = nodes.section()
    node.document = state.document
    nested_parse_with_titles(state, StringList(lines, source=source), node)
    return list(node.children)


class SpecReference(Directive):
    """Every spec section and every installed plugin's options, from the schemas."""

    has_content = False

    def run(self):
        from plasticity_kit import spec as specmod
        from plasticity_kit.plugins import registry
        from plasticity_kit.sweep import SWEEP_OPTIONS

        reg = registry()
        lines = heading("Sections", "-")
        lines += heading("schedule", "~") + option_table(specmod.SCHEDULE, "schedule")
        lines += heading("model", "~")
        lines += ["``model.rule`` names a learning rule (below) and its ``params``; the components "
                  + ", ".join(f"``model.{c}``" for c in specmod.COMPONENTS)
                  + " are those the rule ``uses`` (each a name or ``{name, params}``, defaulting to the rule's "
                  "``defaults``).", ""]
        lines += option_table(specmod.MODEL, "model")
        lines += model_layers_section()
        lines += heading("record", "~") + option_table(specmod.RECORD, "record")
        lines += heading("output", "~") + option_table(specmod.OUTPUT, "output")
        lines += heading("metrics", "~")
        lines += ["A list of metrics (below), each a name or ``{name, params, every}``:", ""]
        lines += option_table([specmod.EVERY], "metrics[i]")
        lines += heading("exporters", "~")
        lines += ["A list of exporters (below), run at the end of a completed run; default "
                  + ", ".join(f"``{e}``" for e in specmod.DEFAULT_EXPORTERS) + ".", ""]
        lines += heading("sweep", "~")
        lines += ["Expanded by ``plasticity-kit sweep`` into concrete runs: ``grid`` (every combination of the "
                  "listed values of dotted spec keys), ``zip`` (lists walked in step) and ``plot`` "
                  "(``x``: a swept key, ``metric``: ``<metric>.<value>``), besides:", ""]
        lines += option_table(SWEEP_OPTIONS.values(), "sweep")
        lines += stage_sections()
        for kind in KIND_TITLES:
            lines += plugin_sections(reg, kind)
        return parse(self.state, lines, "spec-reference")


class PluginHooks(Directive):
    """Every hook of :mod:`plasticity_kit.hookspecs`, with its contract (docstring)."""

    has_content = False

    def run(self):
        from plasticity_kit import hookspecs
        from plasticity_kit.plugins import KINDS

        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 25 15 60", "",
                 "   * - hook", "     - kind", "     - contract"]
        for kind, hook in KINDS.items():
            doc = inspect.cleandoc(getattr(hookspecs, hook).__doc__ or "")
            lines += [f"   * - ``{hook}(register)``", f"     - ``{kind}``", f"     - {' '.join(doc.split())}"]
        return parse(self.state, lines, "plugin-hooks")


KIND_MEANINGS = {
    "number": ("a float; YAML ``1e-3`` is read too", "0.001"),
    "integer": ("an int (a float with no fraction is accepted)", "100"),
    "bool": ("``true`` or ``false``", "true"),
    "string": ("a non-empty string", "gzip"),
    "choice": ("one of ``choices``", "moving_average"),
    "numbers": ("a list of floats (bounds apply to each)", "[0.1, 0.5]"),
    "integers": ("a list of ints (bounds apply to each)", "[64, 64]"),
    "path": ("a file path; a relative path that does not exist from the current folder is read "
             "relative to the spec file", "faces.npy"),
    "filename": ("a file name without a folder (no ``/``, at most 255 bytes), e.g. an exporter's output "
                 "inside the run folder", "synthetic.png"),
    "any": ("anything YAML can hold, checked by the plugin itself", "{a: 1}"),
}


class OptionKinds(Directive):
    """The valid ``Option.kind`` values (from :data:`plasticity_kit.options.KINDS`)."""

    has_content = False

    def run(self):
        from plasticity_kit.options import KINDS, Option

        lines = [".. list-table::", "   :header-rows: 1", "", "   * - kind", "     - accepts", "     - e.g."]
        for kind in KINDS:  # a kind added without a note here is described by Option.expected()
            sample = Option("x", kind, choices=("a", "b") if kind == "choice" else ())
            meaning, example = KIND_MEANINGS.get(kind, (escape(sample.expected()), ""))
            lines += [f"   * - ``{kind}``", f"     - {meaning}", f"     - ``{example}``" if example else "     -"]
        return parse(self.state, lines + [""], "option-kinds")


def setup(app):
    app.add_directive("option-kinds", OptionKinds)
    app.add_directive("spec-reference", SpecReference)
    app.add_directive("plugin-hooks", PluginHooks)
    return {"version": "1", "parallel_read_safe": True}
