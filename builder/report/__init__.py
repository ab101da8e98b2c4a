"""Stage 7: every writer (JSON, Markdown, SARIF, HTML); all writes are atomic."""
