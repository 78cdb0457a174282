"""Helpers the tests share: databases, servers, processes."""
