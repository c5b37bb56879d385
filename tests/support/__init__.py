"""Helpers shared by the test layers (databases, …). Import as ``tests.support.<module>``."""
