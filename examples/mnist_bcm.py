"""BCM on MNIST, the Nico-Curti/plasticity example with plasticity-kit's estimator API.

100 BCM neurons, ReLU, Adam, weights drawn from N(0, 1), batch 1000, 10 epochs, trained on the
10,000 MNIST test images (the reference trains on all 70,000: with 7× fewer steps Adam's learning
rate is raised to 0.05), θ estimated on each batch as in the reference library.  Three runs:
no lateral interaction, lateral inhibition (every off-diagonal L_ij = −0.05) and symmetric
orthogonalisation (orthonormal initial weights, W ← (WWᵀ)^(-1/2)W after every epoch); then the
reference library's default logistic activation without and with orthogonalisation.  Each saves
its weight grid and prints how many different patterns the neurons select.

    PLASTICITY_KIT_MNIST=/path/to/mnist python examples/mnist_bcm.py [--out examples_out]
"""
import time

from common import describe, header, load_mnist_test, output_dir, parser, report
from plasticity_kit import BCM
from plasticity_kit.activations import Logistic, Relu
from plasticity_kit.initializers import Normal
from plasticity_kit.optimizers import Adam
from plasticity_kit.plot import view_weights

RUNS = {
    "bcm": {},
    "bcm_lateral_inhibition": {"interaction_strength": -0.05},
    "bcm_orthogonalized": {"orthogonalize": True},
    "bcm_logistic": {"activation": Logistic()},
    "bcm_logistic_orthogonalized": {"activation": Logistic(), "orthogonalize": True},
}


def main(argv=None):
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    X, y = load_mnist_test(args)
    out = output_dir(args)
    header()
    for name, extra in RUNS.items():
        params = dict(outputs=100, num_epochs=args.epochs or 10, batch_size=1000, activation=Relu(),
                      optimizer=Adam(lr=0.05), weights_init=Normal(mu=0., std=1.), threshold="batch",
                      random_state=0)
        model = BCM(**{**params, **extra})
        start = time.perf_counter()
        model.fit(X)
        seconds = time.perf_counter() - start
        picture = out / f"{name}.png"
        view_weights(model.weights, dims=(28, 28), title=name).savefig(picture, dpi=80)
        report(name, describe(model, X, y), seconds, picture)


if __name__ == "__main__":
    main()
