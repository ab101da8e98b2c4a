"""Stage 4: run the images, receive their telemetry (OTLP), check it, time the start-up."""
