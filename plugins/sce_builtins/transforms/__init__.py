"""Built-in transforms components (entry-point group ``sce.transforms``).

CPU clip transforms (``cpu_video``) run in the DataLoader workers on channels-last clips
``(T, H, W, C)``: ``random_resized_crop``, ``short_side_scale``, ``random_short_side_scale``,
``center_crop``, ``random_crop``, ``uniform_crop``; sample-dict wrappers (``wrappers``):
``only_input_transform``, ``only_input_list_transform``,
``only_input_transform_with_dict_transform`` (with the dict transform ``uniform_crop_video``),
``compose``.

GPU batch transforms (``gpu``, ``blur``) run after device transfer on ``(B, C, T, H, W)``
batches, backed by torchaug 0.3.3: ``apply_transforms_on_list``, ``batch_video_wrapper``,
``div_255``, ``batch_random_color_jitter``, ``batch_random_grayscale``,
``batch_random_gaussian_blur`` (separable by default), ``batch_random_solarize``,
``batch_random_horizontal_flip``, ``normalize``. ``batch_random_color_jitter`` is our own
batched version (``color_jitter``): torchaug's distribution in a fixed number of ops.

Validation presets (``presets``): ``div_255_normalize`` (GPU) and ``scale_center_crop`` (CPU).

``decode_float``: with uint8 clips (the default) the crop resizes in float32 and rounds back to
uint8, so workers ship 4x fewer bytes and the GPU's ``div_255`` does the conversion. With the
seed's ``decode_float: true`` the clips are float ``0..255`` and every CPU transform returns
exactly the reference's float result; ``div_255`` then only divides.
"""
