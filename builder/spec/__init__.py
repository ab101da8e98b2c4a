"""Stage 1: image.yaml and catalog.yaml → validated, typed dataclasses. No Docker here."""
