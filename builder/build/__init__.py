"""Stage 3: bases (local → pull → bootstrap), build contexts, builds and tags."""
