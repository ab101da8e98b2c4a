"""imagewright: one spec per service → dev and prod images, scanned, verified, compared."""

__version__ = "0.1.0"
