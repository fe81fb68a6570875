"""Thin command-line edge: parse, call the public API, render. One module per command group."""
