"""The built-in plugins, registered through the same hooks a third-party package implements."""
from . import activations, initializers, interactions, optimizers
from .datasets.olivetti import Olivetti
from .exporters.image_grid import ImageGrid
from .exporters.summary import Summary
from .hookspecs import hookimpl
from .rules.bcm import BCM


@hookimpl
def register_rules(register):
    register(BCM)


@hookimpl
def register_interactions(register):
    for cls in interactions.BUILTINS:
        register(cls)


@hookimpl
def register_activations(register):
    for cls in activations.BUILTINS:
        register(cls)


@hookimpl
def register_optimizers(register):
    for cls in optimizers.BUILTINS:
        register(cls)


@hookimpl
def register_initializers(register):
    for cls in initializers.BUILTINS:
        register(cls)


@hookimpl
def register_datasets(register):
    register(Olivetti)


@hookimpl
def register_exporters(register):
    register(ImageGrid)
    register(Summary)
