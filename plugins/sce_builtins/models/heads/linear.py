"""Linear head (docs/reference.md §3.5): the online probe and linear-evaluation classifier."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from sce_builtins.models.heads._layers import make_norm_1d


class LinearHead(nn.Module):
    """Linear classifier: [Dropout] Linear [Norm], mapping ``(B, input_dim)`` to ``(B, output_dim)``.

    The Linear has a bias only when ``bias`` is true and no norm follows. Parameter names are
    ``layers.<k>.*`` as in the reference.

    Args:
        affine: Affine output norm (only with ``norm_layer``).
        bias: Bias in the Linear (dropped when a norm follows).
        dropout: Dropout probability before the Linear; 0 adds no Dropout module.
        dropout_inplace: Run the Dropout in place.
        input_dim: Input width.
        norm_layer: ``bn_1D``, ``sync_bn`` or null; 2-D/3-D norms are rejected.
        output_dim: Output width (number of classes).
        init_normal: Initialise the weight from N(init_mean, init_std) (else PyTorch default).
        init_mean: Mean of that initialisation.
        init_std: Standard deviation of that initialisation.
        zero_bias: With ``init_normal``, set the bias (if any) to zero.
    """

    def __init__(
        self,
        affine: bool = True,
        bias: bool = True,
        dropout: float = 0.0,
        dropout_inplace: bool = False,
        input_dim: int = 2048,
        norm_layer: Literal["bn_1D", "sync_bn"] | None = None,
        output_dim: int = 1000,
        init_normal: bool = True,
        init_mean: float = 0.0,
        init_std: float = 0.01,
        zero_bias: bool = True,
    ) -> None:
        super().__init__()
        owner = "linear_head"
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{owner}: dropout must be in [0, 1), got {dropout}")
        if input_dim < 1 or output_dim < 1:
            raise ValueError(f"{owner}: input_dim and output_dim must be positive")
        modules: list[nn.Module] = []
        if dropout > 0:
            modules.append(nn.Dropout(p=dropout, inplace=dropout_inplace))
        linear = nn.Linear(input_dim, output_dim, bias=bias and norm_layer is None)
        if init_normal:
            with torch.no_grad():
                linear.weight.normal_(mean=init_mean, std=init_std)
                if zero_bias and linear.bias is not None:
                    linear.bias.zero_()
        modules.append(linear)
        if norm_layer is not None:
            modules.append(make_norm_1d(norm_layer, output_dim, affine, owner))
        self.layers = nn.Sequential(*modules)
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.num_features = output_dim
        self.num_layers = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, input_dim)`` to ``(B, output_dim)``."""
        return self.layers(x)

    def layer_id(self, name: str) -> int:
        """Every parameter belongs to layer 0."""
        return 0
