"""HOW MUCH: one family of formulas per module (params, flops, ...), pure functions over specs."""
