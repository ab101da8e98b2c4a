"""The only code that talks to the Docker engine: images, builds, containers, exports."""
