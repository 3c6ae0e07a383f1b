"""Built-in heads: projectors, predictors and classifiers.

Registered (entry-point group ``sce.heads``):

* ``mlp_head``: :class:`~sce_builtins.models.heads.mlp.MLPHead` (projector / predictor, docs/reference.md §3.4);
* ``linear_head``: :class:`~sce_builtins.models.heads.linear.LinearHead` (docs/reference.md §3.5);
* ``video_resnet_head``: :class:`~sce_builtins.models.heads.video_resnet.VideoResNetHead`
  (docs/reference.md §3.3, maps a 5-D feature map to ``(B, C)``);
* ``video_classification_head``:
  :class:`~sce_builtins.models.heads.video_classification.VideoClassificationHead`
  (global pool + dropout + linear).

Every head exposes ``num_features`` (its output width), ``num_layers`` and
``layer_id(param_name)`` for layer-wise learning-rate decay.
"""
