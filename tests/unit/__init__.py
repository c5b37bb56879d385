"""Unit tests: mirror src/, no sockets, no database."""
