"""Unit tests of the pure protocol core."""
