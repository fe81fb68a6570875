"""Our FLOP counts against ``torch.utils.flop_counter.FlopCounterMode`` run over the transformers code
(eager attention): full-size dense models on the meta device, and a shrunk copy of every bundled
architecture, MoE included, run for real on the CPU. The issue asks for 1%; the counts agree exactly, so
the tolerance here is float rounding."""

from __future__ import annotations

import pytest
from tests.reference.hf_reference import hf_forward_flops, is_moe, tiny_config

from suanli.core.flops import count_flops
from suanli.spec.resolve import catalog_config, model_catalog, spec_from_config

EXACT = 1e-9
CONFIGS = {entry.key: catalog_config(entry) for entry in model_catalog()}
DENSE = [key for key, config in CONFIGS.items() if not is_moe(config)]
# one full-size model per dense family keeps the suite fast; the tiny copies below cover every model
FULL_SIZE = sorted({config["model_type"]: key for key, config in CONFIGS.items() if key in DENSE}.values())


@pytest.mark.parametrize("key", FULL_SIZE)
def test_full_size_dense_forward_and_backward(key: str) -> None:
    config = CONFIGS[key]
    spec = spec_from_config(config, name=key)
    ours = count_flops(spec, seq=64, batch=2)
    assert ours.forward == pytest.approx(hf_forward_flops(config, batch=2, seq=64), rel=EXACT)
    assert ours.training == pytest.approx(hf_forward_flops(config, batch=2, seq=64, backward=True), rel=EXACT)


@pytest.mark.parametrize("key", list(CONFIGS))
def test_tiny_copy_on_cpu(key: str) -> None:
    config = tiny_config(CONFIGS[key])
    ours = count_flops(spec_from_config(config, name=key), seq=24, batch=2)
    assert ours.forward == pytest.approx(hf_forward_flops(config, batch=2, seq=24, device="cpu"), rel=EXACT)
    assert ours.training == pytest.approx(
        hf_forward_flops(config, batch=2, seq=24, device="cpu", backward=True), rel=EXACT)
