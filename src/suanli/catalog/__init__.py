"""Data: accelerators, interconnects, bundled model configs — each entry with its source."""
