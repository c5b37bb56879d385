"""Unit tests of the configuration models."""
