"""Stage 5: Trivy, hadolint and the gate (findings + allow-list + policy → verdict)."""
