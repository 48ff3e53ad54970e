"""The reference study's Figs. 1, 3 and 5 re-judged: tables from the three sweeps' run records.

    python benchmarks/study_tables.py [RUNS_DIR]      # default runs/; prints reStructuredText tables

Reads every ``<RUNS_DIR>/<sweep>/<run>/sweep-run.json`` of the sweeps ``olivetti-matrices`` (Fig. 1),
``olivetti-dataset-size`` (Fig. 3) and ``olivetti-batch-size`` (Fig. 5), groups the completed runs
by configuration and prints, per configuration and number of neurons N, the mean ± sd over the
repeats found of: FID at Inception dims 2048 of the run's 64 images (one middle neuron per
network, against the 400 faces), FID / real floor, KID (×10³), distinct people among the 64
(nearest real face), the SSIM memorisation ratio and authenticity.  The real floor row scores 64
real faces, min-max scaled, drawn at random (10 draws) the same way.  Fig. 3's 10-face rows are
Fig. 1's B rows (same spec, same seeds: the same runs), taken from Fig. 1 where Fig. 3 lacks them.
"""
from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

COLUMNS = [("fid.fid", "FID", 1, "{:.1f}"), ("fid.ratio", "FID/floor", 1, "{:.2f}"),
           ("fid.kid", "KID×10³", 1e3, "{:.0f}"), ("identities.distinct_identities", "people /64", 1, "{:.1f}"),
           ("memorisation.ssim_ratio", "SSIM mem.", 1, "{:.2f}"), ("authenticity.authenticity", "auth.", 1, "{:.2f}")]


def records(directory: Path) -> list[dict]:
    out = []
    for path in sorted(directory.glob("*/sweep-run.json")):
        r = json.loads(path.read_text())
        if r.get("status") == "completed" and "fid.fid" in r.get("metrics", {}):
            out.append(r)
    return out


def cell(values, fmt, scale):
    v = np.asarray(values, dtype=float) * scale
    if len(v) == 0:
        return "—"
    return fmt.format(v.mean()) + (" ± " + fmt.format(v.std(ddof=1)) if len(v) > 1 else "")


def table(title: str, groups: dict, floor: dict | None) -> str:
    header = ["configuration", "N", "runs"] + [c[1] for c in COLUMNS]
    rows = []
    if floor:
        rows.append(["64 real faces (floor)", "—", str(floor["draws"]), f"{floor['fid']:.1f} ± {floor['fid_sd']:.1f}",
                     "1", f"{floor['kid'] * 1e3:.1f} ± {floor['kid_sd'] * 1e3:.1f}", f"{floor['people']:.1f}", "—", "—"])
    for (label, n), recs in groups.items():
        rows.append([label, str(n), str(len(recs))]
                    + [cell([r["metrics"][k] for r in recs if k in r["metrics"]], fmt, scale)
                       for k, _, scale, fmt in COLUMNS])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    rule = "  ".join("=" * w for w in widths)
    lines = [f"**{title}**", "", rule, "  ".join(h.ljust(w) for h, w in zip(header, widths)), rule]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines += [rule, ""]
    return "\n".join(lines)


def grouped(recs, label_of) -> dict:
    groups = defaultdict(list)
    for r in recs:
        label = label_of(r["params"])
        if label is not None:
            groups[(label, r["params"]["model.n_neurons"])].append(r)
    def order(kv):  # by the first number in the label (data set size, batch size), then label, N
        (label, n), _ = kv
        number = re.search(r"\d+", label)
        return (int(number[0]) if number else 0, label, n)
    return dict(sorted(groups.items(), key=order))


def fig1_label(p):
    matrix = {"uniform": "L", "binocular": "B"}[p["model.interaction"]]
    return f"{matrix}, {'same person' if p['data.params.select'] == 'random_persons' else 'random faces'}"


def fig3_label(p):
    k = p.get("data.params.k", 10)
    if p.get("data.params.select", "random_persons") == "random":
        return f"{k} random faces"
    people = p.get("data.params.n_persons", 1)
    return f"{k} faces, {'same person' if people == 1 else f'{people} people'}"


def floor_row() -> dict | None:
    """The real floor of 64 min-max scaled faces at dims 2048 (10 draws, seed 0, cached), with the
    distinct people of those draws."""
    try:
        from plasticity_kit.datasets.olivetti import Olivetti
        from plasticity_kit.metrics import features
        from plasticity_kit.metrics.floor import draw_subsets, real_floor

        data = Olivetti(_key="data.params").load(np.random.default_rng(0))
        ref = features.reference_features(data, dims=2048)
        minmax = features.reference_features(data, dims=2048, scaling="minmax")
    except Exception as exc:  # no [fid] extra or weights: the tables go without the floor row
        print(f"(no floor row: {exc})", file=sys.stderr)
        return None
    f = real_floor(minmax, ref, 64, 10, 0)
    people = [len(np.unique(data.labels[s])) for s in draw_subsets(400, 64, 10, 0)]
    return {"draws": 10, "fid": f["fid_mean"], "fid_sd": f["fid_sd"], "kid": f["kid_mean"], "kid_sd": f["kid_sd"],
            "people": float(np.mean(people))}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0] if argv else "runs")
    floor = floor_row()
    fig1 = records(root / "olivetti-matrices")
    fig3 = records(root / "olivetti-dataset-size")
    have = {r["name"].replace("interaction=binocular,", "") for r in fig3}
    fig3_from_fig1 = [dict(r, params={**r["params"], "data.params.k": 10, "data.params.n_persons": 1})
                      for r in fig1 if r["params"]["model.interaction"] == "binocular"]
    fig5 = records(root / "olivetti-batch-size")
    print(table("Fig. 1 (10 faces, batch 10)", grouped(fig1, fig1_label), floor))
    print(table("Fig. 3 (B matrix; 10-face rows are Fig. 1's B runs)",
                grouped(fig3 + [r for r in fig3_from_fig1 if r["name"] not in have], fig3_label), floor))
    print(table("Fig. 5 (all 400 faces, B)", grouped(fig5, lambda p: f"batch {p['schedule.batch_size']}"), floor))
    return 0


if __name__ == "__main__":
    sys.exit(main())
