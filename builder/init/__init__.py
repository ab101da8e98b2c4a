"""`init`: an existing Python service's folder → a guessed `images/<name>/image.yaml` (the stage
before spec: it only reads the app's files, and writes through the spec validator)."""
