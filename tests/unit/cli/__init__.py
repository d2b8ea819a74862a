"""Unit tests of the `billing` command-line tool."""
