"""deviceflow: an OAuth 2.0 Device Authorization Grant (RFC 8628) server, CLI and client library."""

__version__ = "0.1.0"
__all__ = ["__version__"]
