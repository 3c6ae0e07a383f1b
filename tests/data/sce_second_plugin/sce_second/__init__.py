"""sce-second: a loss, a clip sampler and a hook module (registers nothing on import)."""
