"""Command-line tool for integrators and operators."""
