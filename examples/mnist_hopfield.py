"""Krotov–Hopfield competing hidden units on MNIST, the Nico-Curti/plasticity example with
plasticity-kit's estimator API.

100 hidden units, p = 2, k = 2, weights drawn from N(0, 1), trained on the 10,000 MNIST test
images with the ranking rule (Krotov & Hopfield 2019), batch 100, 30 epochs, learning rate 0.04
decaying linearly (the reference runs 10 epochs of batch 1000 over 70,000 images).  Three runs:
with the anti-Hebbian push of the k-th unit (Δ = 0.4, the rule's lateral inhibition), without it
(Δ = 0), and with symmetric orthogonalisation.  Each saves its weight grid and prints how many
different patterns the units select.

    PLASTICITY_KIT_MNIST=/path/to/mnist python examples/mnist_hopfield.py [--out examples_out]
"""
import time

from common import describe, header, load_mnist_test, output_dir, parser, report
from plasticity_kit import Hopfield
from plasticity_kit.plot import view_weights

RUNS = {
    "hopfield": {},
    "hopfield_no_inhibition": {"delta": 0.0},
    "hopfield_orthogonalized": {"orthogonalize": True},
}


def main(argv=None):
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    X, y = load_mnist_test(args)
    out = output_dir(args)
    header()
    for name, extra in RUNS.items():
        model = Hopfield(outputs=100, num_epochs=args.epochs or 30, batch_size=100, learning_rate=0.04,
                         random_state=0, **extra)
        start = time.perf_counter()
        model.fit(X)
        seconds = time.perf_counter() - start
        picture = out / f"{name}.png"
        view_weights(model.weights, dims=(28, 28), per_neuron=True, title=name).savefig(picture, dpi=80)
        report(name, describe(model, X, y), seconds, picture)


if __name__ == "__main__":
    main()
