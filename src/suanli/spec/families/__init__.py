"""One module per group of model families, each exporting a ``model_type`` → adapter mapping; ``spec/hf.py``
merges them."""
