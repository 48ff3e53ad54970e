"""The pluggy hook specifications of plasticity-kit (entry-point group ``plasticity_kit``).

Every hook receives a ``register`` callback and calls it once per class it contributes.  The
built-ins in :mod:`plasticity_kit.default_plugins` use exactly these hooks.  Each registered
class carries a unique ``name`` (the word used in specs), an ``options`` :class:`~plasticity_kit.options.Schema`
and a docstring (shown by ``plasticity-kit plugins``).
"""
import pluggy

hookspec = pluggy.HookspecMarker("plasticity_kit")
hookimpl = pluggy.HookimplMarker("plasticity_kit")


@hookspec
def register_rules(register):
    """Register learning rules: ``register(RuleClass)``; subclasses of :class:`plasticity_kit.rules.Rule`
    implementing at least ``step(state, batch)`` (named in specs as ``model.rule``)."""


@hookspec
def register_interactions(register):
    """Register lateral interaction matrices: ``register(InteractionClass)``.

    A class with ``lateral(n_neurons) -> L`` (the L of y = σ((I−L)⁻¹Wx), shape (N, N)); see
    :class:`plasticity_kit.interactions.Interaction`.
    """


@hookspec
def register_activations(register):
    """Register activation functions σ: ``register(ActivationClass)``; see :mod:`plasticity_kit.activations`."""


@hookspec
def register_optimizers(register):
    """Register optimizers that apply a rule's weight change: ``register(OptimizerClass)``; a
    :class:`~plasticity_kit.component.Component` with ``init_state(shape, dtype)`` and ``apply(W, delta,
    state)`` stepping W along ΔW in place (see :mod:`plasticity_kit.optimizers`)."""


@hookspec
def register_initializers(register):
    """Register weight initializers: ``register(InitializerClass)``; a
    :class:`~plasticity_kit.component.Component` called as ``init(rng, shape, dtype)`` returning the
    initial array (see :mod:`plasticity_kit.initializers`)."""


@hookspec
def register_datasets(register):
    """Register data sets: ``register(DatasetClass)``; a :class:`~plasticity_kit.datasets.base.Dataset`
    whose ``load(rng)`` returns a :class:`~plasticity_kit.datasets.base.Data` (``X``: samples × inputs,
    values in [0, 1]; ``image_shape`` when the inputs are images)."""


@hookspec
def register_exporters(register):
    """Register exporters run at the end of a completed run: ``register(ExporterClass)``; an
    :class:`~plasticity_kit.exporters.base.Exporter` whose ``export(result, out_dir)`` writes files and
    returns their paths."""


@hookspec
def register_metrics(register):
    """Register metrics computed during or after a run: ``register(MetricClass)``; a
    :class:`~plasticity_kit.metrics.base.Metric` whose ``compute(ctx)`` returns ``{value_name: float |
    array}`` (recorded under ``metrics/<name>/``)."""


@hookspec
def register_executors(register):
    """Register sweep executors: ``register(ExecutorClass)``; a class with ``map(fn, tasks)`` yielding
    ``fn(task)`` for every task (any order); see :class:`plasticity_kit.executors.Executor`."""
