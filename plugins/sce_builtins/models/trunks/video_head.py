"""A trunk followed by a head on its feature map (docs/reference.md §3.1, the seed's nested trunk node)."""

from __future__ import annotations

import torch
from torch import nn

from sce_builtins.models.trunks.base import Trunk, has_parameters
from sce_core.slots import Component


class VideoHeadModel(Trunk):
    """Trunk ``model`` then ``head`` on its feature map: ``forward(x) = head(features(x))``.

    ``features`` is ``model.forward_features`` when the model has it (every built-in trunk
    does: the map before global pooling), else ``model(x)``. Attributes ``model`` and ``head``
    give the reference's state-dict prefixes (``trunk.model.*`` inside the SCE model).
    ``num_features`` is the head's ``num_features`` (else the model's). With a head that does
    not average globally (``output_with_global_average: false``) the output stays a map.
    Layer ids: the model's, then one more for the head when it has parameters.

    Seed node::

        trunk:
          _name_: video_head_model
          model: {_name_: resnet3d_basic, head: null, model_depth: 18}
          head: {_name_: video_resnet_head, in_features: 512, num_classes: 0, pool: null, ...}

    Args:
        model: The trunks node producing the feature map (e.g. ``resnet3d_basic`` with
            ``head: null``).
        head: The heads node applied to that map (e.g. ``video_resnet_head``).
        pretrained: Path of a state dict of this whole module (``sce export``) loaded strictly.
    """

    component_name = "video_head_model"

    def __init__(
        self,
        model: Component("trunks"),
        head: Component("heads"),
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module) or not isinstance(head, nn.Module):
            raise ValueError(
                "video_head_model: model and head must be built modules (give trunks and heads "
                "nodes with _name_)"
            )
        if getattr(model, "head", None) is not None:
            raise ValueError(
                "video_head_model: the model node already has a head, which would be skipped; "
                "set its head: null"
            )
        self.model = model
        self.head = head
        self.num_features = int(getattr(head, "num_features", getattr(model, "num_features", 0)))
        self._model_layers = int(getattr(model, "num_layers", 1))
        self.num_layers = self._model_layers + (1 if has_parameters(head) else 0)
        if pretrained is not None:
            self.load_pretrained(pretrained)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The model's feature map (before the head)."""
        features = getattr(self.model, "forward_features", None)
        return features(x) if features is not None else self.model(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``head(model features)``: ``(B, num_features)`` for a globally averaging head."""
        return self.head(self.forward_features(x))

    def layer_id(self, name: str) -> int:
        """``model.*`` -> the model's layer id, ``head.*`` -> the last layer id."""
        if name.startswith("model."):
            inner = getattr(self.model, "layer_id", None)
            return int(inner(name[len("model."):])) if inner is not None else 0
        return self.num_layers - 1
