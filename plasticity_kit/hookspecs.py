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
    """Register learning rules: ``register(RuleClass)``; subclasses of :class:`plasticity_kit.rules.Rule`."""


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
    """Register optimizers that apply a rule's weight change: ``register(OptimizerClass)``."""


@hookspec
def register_initializers(register):
    """Register weight initializers: ``register(InitializerClass)``."""


@hookspec
def register_datasets(register):
    """Register data sets: ``register(DatasetClass)``; see :class:`plasticity_kit.datasets.Dataset`."""


@hookspec
def register_exporters(register):
    """Register exporters run at the end of a run: ``register(ExporterClass)``."""


@hookspec
def register_metrics(register):
    """Register metrics computed during or after a run: ``register(MetricClass)``; see
    :class:`plasticity_kit.metrics.Metric`."""


@hookspec
def register_executors(register):
    """Register sweep executors: ``register(ExecutorClass)``; a class with ``map(fn, tasks)`` yielding
    ``fn(task)`` for every task (any order); see :class:`plasticity_kit.executors.Executor`."""
