"""Built-in trunks: video and image backbones mapping a clip batch to features ``(B, D)``.

Registered (entry-point group ``sce.trunks``):

* ``resnet3d_basic``: the recipe's "R3D-18" (depths 10/18/34, docs/reference.md §3.2), ``(B, 512)``;
* ``video_head_model``: a trunk ``model`` followed by a ``head`` on its feature map (docs/reference.md §3.1),
  the seed's nested trunk node;
* ``tv_r3d_18``, ``tv_mc3_18``, ``tv_r2plus1d_18``, ``tv_s3d``: torchvision's video models;
* ``resnet18`` ... ``wide_resnet101_2``: torchvision's 2-D ResNets (images ``(B, C, H, W)``).

Every trunk exposes ``num_features``, ``num_layers`` and ``layer_id(param_name)`` (layer-wise
learning-rate decay), ``forward_features`` (the map before global pooling) and takes
``pretrained`` (a state-dict file written by ``sce export``).
"""
