"""PNG grids of every learned layer's receptive fields (:meth:`Stack.receptive_fields`)."""
from __future__ import annotations

from pathlib import Path

from ..exporters.base import Exporter
from ..exporters.image_grid import save_image_grid
from ..options import Option, Schema
from .stack import STRONGEST


class LayerFields(Exporter):
    """One PNG grid per learned layer of a stack, ``layer<i>_fields.png``: the first layer's filters
    as image patches (k×k×C), deeper layers by the composition of their strongest inputs' fields over
    the part of the image they see.

    The patches are :meth:`Stack.field_patches <plasticity_kit.model.stack.Stack.field_patches>`."""

    name = "layer_fields"
    options = Schema(
        Option("strongest", "integer", STRONGEST, "inputs of a deeper unit composed into its field (largest |w|)",
               low=1),
        Option("units", "integer", 64, "units drawn per layer (the first ones)", low=1),
        Option("columns", "integer", None, "images per row (default: about √n)", low=1, nullable=True),
        Option("cmap", "string", "bwr", "matplotlib colormap"),
    )

    def export(self, result, out_dir):
        rule, shape = result.rule, result.data.image_shape
        if not hasattr(rule, "receptive_fields") or not shape:
            return []
        paths = []
        for i in filter(rule.drawable, rule.learned):
            images = rule.field_patches(result.state, i, self.strongest)[:self.units]
            images = images[..., 0] if images.shape[3] == 1 else images
            title = f"{result.spec.name}: layer {i} ({rule.blocks[i].rule.name}), receptive fields"
            paths.append(save_image_grid(images, Path(out_dir) / f"layer{i}_fields.png", columns=self.columns,
                                         cmap=self.cmap, title=title))
        return paths
