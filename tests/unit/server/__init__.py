"""Unit tests of the server pieces around the core: keys, identity, limits, service."""
