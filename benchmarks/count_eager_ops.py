"""Count the eager PyTorch operator calls of one training step of a transformers model (``torch.profiler``).

    python benchmarks/count_eager_ops.py [--model-type llama]

Prints the top-level ``aten::`` calls per decoder layer and once per step (``suanli.measure.eager_ops``), the
figures ``PerformanceAssumptions.eager_training_ops_per_layer`` / ``eager_training_ops_fixed`` hold. The model's
config is shrunk to tiny widths (the number of calls does not depend on them).
"""

from __future__ import annotations

import argparse

from suanli.measure.eager_ops import TINY_LLAMA, count_eager_ops
from suanli.spec.assumptions import PerformanceAssumptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-type", default="llama")
    args = parser.parse_args()
    n = count_eager_ops({**TINY_LLAMA, "model_type": args.model_type})  # tiny widths; layers set per count
    a = PerformanceAssumptions()
    print(f"per layer {n.per_layer} (3-layer check {n.per_layer_check}), fixed {n.fixed}; "
          f"assumed {a.eager_training_ops_per_layer} and {a.eager_training_ops_fixed}")


if __name__ == "__main__":
    main()
