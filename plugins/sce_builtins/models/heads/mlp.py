"""MLP head used as SCE projector and predictor (docs/reference.md §3.4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from sce_builtins.models.heads._layers import make_activation, make_norm_1d


class MLPHead(nn.Module):
    """Multi-layer perceptron head: [Dropout] Linear [Norm] [Activation] per layer.

    Layer ``i`` (``0 <= i < num_layers``) maps ``input_dim`` or the previous hidden width to
    the next hidden width or ``output_dim``. With ``last = (i == num_layers - 1)``:

    * a norm is used when ``norm_layer`` is set and (not last or ``last_norm``);
    * the norm is affine when (``affine`` and not last) or (``last_affine`` and last);
    * the Linear has a bias when ((``bias`` and not last) or (``last_bias`` and last)) and the
      layer has no norm;
    * every layer but the last ends with the activation.

    Parameter names are ``layers.<k>.*`` (one flat ``nn.Sequential``) as in the reference, so
    its checkpoints load unchanged. Differences from the reference: ``num_layers`` is the
    number of Linear layers (the reference's property counted Sequential modules) and
    ``layer_id`` returns the Linear layer index; ``activation_inplace`` applies to ReLU only
    (GELU and softmax have no in-place form).

    Args:
        activation_inplace: Run the activation in place (ReLU only).
        activation_layer: Hidden activation: ``relu``, ``gelu`` or ``softmax`` (over dim 1).
        affine: Affine hidden norms.
        bias: Bias in the hidden Linear layers (dropped where a norm follows).
        dropout: Dropout probability before each Linear: one float for every layer or one per
            layer (``num_layers`` values); 0 adds no Dropout module.
        dropout_inplace: Run the Dropout modules in place.
        hidden_dims: Hidden widths: one int for every hidden layer or ``num_layers - 1`` ints.
        input_dim: Input width.
        norm_layer: ``bn_1D`` (BatchNorm1d), ``sync_bn`` (SyncBatchNorm) or null (no norm).
        num_layers: Number of Linear layers (at least 1).
        last_bias: Bias in the last Linear (dropped where a last norm is used).
        last_norm: Put the norm after the last Linear too.
        last_affine: Affine last norm.
        output_dim: Output width.
        last_init_normal: Re-initialise the last Linear weight from N(init_mean, init_std).
        init_mean: Mean of that initialisation.
        init_std: Standard deviation of that initialisation.
        zero_bias: With ``last_init_normal``, set the last Linear bias (if any) to zero.
    """

    def __init__(
        self,
        activation_inplace: bool = True,
        activation_layer: Literal["relu", "gelu", "softmax"] = "relu",
        affine: bool = True,
        bias: bool = True,
        dropout: float | Sequence[float] = 0.0,
        dropout_inplace: bool = False,
        hidden_dims: int | Sequence[int] = 2048,
        input_dim: int = 2048,
        norm_layer: Literal["bn_1D", "sync_bn"] | None = None,
        num_layers: int = 2,
        last_bias: bool = True,
        last_norm: bool = False,
        last_affine: bool = False,
        output_dim: int = 128,
        last_init_normal: bool = False,
        init_mean: float = 0.0,
        init_std: float = 0.01,
        zero_bias: bool = True,
    ) -> None:
        super().__init__()
        owner = "mlp_head"
        if num_layers < 1:
            raise ValueError(f"{owner}: num_layers must be >= 1, got {num_layers}")
        hidden = _per_layer(hidden_dims, num_layers - 1, "hidden_dims", owner, int)
        drops = _per_layer(dropout, num_layers, "dropout", owner, float)
        for p in drops:
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{owner}: dropout values must be in [0, 1), got {p}")
        if input_dim < 1 or output_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"{owner}: input_dim, hidden_dims and output_dim must be positive")
        if init_std < 0:
            raise ValueError(f"{owner}: init_std must be >= 0, got {init_std}")

        modules: list[nn.Module] = []
        layer_of_module: list[int] = []
        dims = [input_dim, *hidden, output_dim]
        for i in range(num_layers):
            last = i == num_layers - 1
            use_norm = norm_layer is not None and (not last or last_norm)
            use_affine = (affine and not last) or (last_affine and last)
            use_bias = ((bias and not last) or (last_bias and last)) and not use_norm
            block: list[nn.Module] = []
            if drops[i] > 0:
                block.append(nn.Dropout(p=drops[i], inplace=dropout_inplace))
            linear = nn.Linear(dims[i], dims[i + 1], bias=use_bias)
            if last and last_init_normal:
                with torch.no_grad():
                    linear.weight.normal_(mean=init_mean, std=init_std)
                    if zero_bias and linear.bias is not None:
                        linear.bias.zero_()
            block.append(linear)
            if use_norm:
                block.append(make_norm_1d(norm_layer, dims[i + 1], use_affine, owner))
            if not last:
                block.append(make_activation(activation_layer, owner, activation_inplace))
            modules.extend(block)
            layer_of_module.extend([i] * len(block))

        self.layers = nn.Sequential(*modules)
        self._layer_of_module = tuple(layer_of_module)
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.num_features = output_dim
        self.num_layers = num_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, input_dim)`` to ``(B, output_dim)``."""
        return self.layers(x)

    def layer_id(self, name: str) -> int:
        """Index (0-based) of the Linear layer that owns parameter ``name`` (``layers.k.*``)."""
        parts = name.split(".")
        if len(parts) >= 2 and parts[0] == "layers" and parts[1].isdigit():
            return self._layer_of_module[int(parts[1])]
        return self.num_layers - 1


def _per_layer(
    value: float | int | Sequence[float] | Sequence[int],
    count: int,
    name: str,
    owner: str,
    cast: type,
) -> list:
    """Broadcast a scalar to ``count`` values or check a sequence has ``count`` values."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [cast(value)] * count
    values = [cast(v) for v in value]
    if len(values) != count:
        raise ValueError(
            f"{owner}: {name} needs {count} value(s) for num_layers, got {len(values)}; "
            f"give one number or a list of {count}"
        )
    return values
