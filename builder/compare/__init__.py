"""Stage 6: measure images side by side against dev and a naive baseline; the bench."""
