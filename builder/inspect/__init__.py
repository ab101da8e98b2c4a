"""Stage 4: read an image without running it: layers, attack surface, config checks."""
