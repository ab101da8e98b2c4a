"""Stage 2: ServiceSpec + catalog Target → Dockerfile text (sandboxed Jinja), base pins."""
