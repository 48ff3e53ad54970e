"""Supervised BCM and Krotov–Hopfield networks on MNIST: fit(X, y), predict, in-paint.

``fit(X, y)`` appends the one-hot label to every image (as the Nico-Curti/plasticity library), so
each neuron also learns a label part.  ``predict`` shows an image with an empty label part and
reads the label part of the network's reconstruction; ``inpaint`` fills missing pixels (here the
lower half of each digit) the same way.  Trained on the first 8,000 MNIST test images, scored on
the last 2,000; writes ``inpaint_<model>.png`` (originals, masked inputs, in-painted).

    PLASTICITY_KIT_MNIST=/path/to/mnist python examples/mnist_supervised.py [--out examples_out]
"""
import time

import numpy as np
from matplotlib.figure import Figure

from common import load_mnist_test, output_dir, parser
from plasticity_kit import BCM, KrotovHopfield
from plasticity_kit.optimizers import Adam


def models(epochs):
    return {
        "bcm": BCM(outputs=100, num_epochs=epochs or 10, batch_size=1000, activation="relu",
                   optimizer=Adam(lr=0.05), threshold="batch", orthogonalize=True, random_state=0),
        "krotov_hopfield": KrotovHopfield(outputs=100, num_epochs=epochs or 30, batch_size=100,
                                          learning_rate=0.04, random_state=0),
    }


def save_inpainting(path, original, masked, filled, title):
    fig = Figure(figsize=(8, 2.8))
    rows = (("original", original), ("lower half missing", np.nan_to_num(masked, nan=0.5)), ("in-painted", filled))
    n = len(original)
    for r, (label, images) in enumerate(rows):
        for i in range(n):
            ax = fig.add_subplot(3, n, r * n + i + 1)
            ax.imshow(images[i].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            ax.set_axis_off()
            if i == 0:
                ax.set_title(label, fontsize=7, loc="left")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=90)


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=8000, help="images used for training (the rest are the test set)")
    args = p.parse_args(argv)
    X, y = load_mnist_test(args)
    Xtr, ytr, Xte, yte = X[:args.train], y[:args.train], X[args.train:], y[args.train:]
    out = output_dir(args)
    masked = Xte.copy().reshape(-1, 28, 28)
    masked[:, 14:] = np.nan
    masked = masked.reshape(len(Xte), -1)
    missing = np.isnan(masked)
    baseline = float(((Xtr.mean(axis=0)[None, :] - Xte)[missing] ** 2).mean())
    print(f"train {len(Xtr)}, test {len(Xte)}; in-painting error of the mean training image: {baseline:.4f}")
    for name, model in models(args.epochs).items():
        start = time.perf_counter()
        model.fit(Xtr, ytr)
        seconds = time.perf_counter() - start
        accuracy = float((model.predict(Xte) == yte).mean())
        filled = model.inpaint(masked)
        error = float(((filled - Xte)[missing] ** 2).mean())
        picture = out / f"inpaint_{name}.png"
        save_inpainting(picture, Xte[:10], masked[:10], filled[:10].clip(0, 1), f"{name}: accuracy {accuracy:.3f}")
        print(f"{name:<16} accuracy {accuracy:.3f}   in-painting error {error:.4f}   {seconds:.1f}s  {picture}")


if __name__ == "__main__":
    main()
