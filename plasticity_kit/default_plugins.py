"""The built-in plugins, registered through the same hooks a third-party package implements."""
from . import activations, executors, initializers, interactions, optimizers
from .datasets.olivetti import Olivetti
from .exporters.animation import Animation
from .exporters.image_grid import ImageGrid
from .exporters.summary import Summary
from .hookspecs import hookimpl
from .rules.bcm import BCM
from .rules.krotov_hopfield import KrotovHopfield
from .rules.krotov_hopfield_dynamics import KrotovHopfieldDynamics
from .rules.softhebb import SoftHebb
from .datasets.mnist import MNIST
from .datasets.fashion_mnist import FashionMNIST
from .metrics.convergence import WeightNorm
from .metrics.linear_probe import LinearProbe
from .rules.weight_sharing import HebbianWeightSharing
from .metrics.weight_sharing_snr import WeightSharingSNR
from .datasets.arrays import Images
from .datasets.cifar10 import CIFAR10
from .datasets.noise import WhiteNoise
from .exporters.snr_plot import SNRPlot
from .model.exporter import LayerFields
from .metrics import authenticity, diversity, fid, kid, memorisation, nearest, network, prdc


@hookimpl
def register_rules(register):
    register(BCM)
    register(KrotovHopfield)
    register(KrotovHopfieldDynamics)
    register(HebbianWeightSharing)
    register(SoftHebb)


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
    register(CIFAR10)
    register(Images)
    register(WhiteNoise)
    register(MNIST)
    register(FashionMNIST)


@hookimpl
def register_exporters(register):
    register(ImageGrid)
    register(Summary)
    register(Animation)
    register(SNRPlot)
    register(LayerFields)


@hookimpl
def register_metrics(register):
    register(WeightNorm)
    register(LinearProbe)
    register(WeightSharingSNR)
    for cls in (fid.FID, kid.KID, prdc.PRDC, nearest.Nearest, network.NetworkProperties, diversity.Identities,
                memorisation.Memorisation, authenticity.Authenticity):
        register(cls)


@hookimpl
def register_executors(register):
    for cls in executors.BUILTINS:
        register(cls)
