"""Named assumptions and conventions, with their defaults, overridable by the user.

FLOP-counting conventions live here because they change what a number means, not what the hardware does.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from suanli.errors import SpecError


class AttentionSpan(Enum):
    """Which query-key pairs the attention score and value matmuls are counted over.

    FULL counts all S×S pairs: what eager attention computes (it masks after the matmul), and the convention
    of Megatron-LM and of ``torch.utils.flop_counter`` over eager code. CAUSAL counts only the pairs a causal
    (and, where the layer has one, sliding-window) kernel such as FlashAttention actually computes:
    S(S+1)/2 for causal attention, about S·W for a window W ≪ S.
    """

    FULL = "full"
    CAUSAL = "causal"


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryAssumptions:
    """Memory that no formula over the model gives, as named, overridable inputs with their sources.

    - ``cuda_context_bytes``: the CUDA context, kernels and library handles each process holds before any
      tensor. 723 MiB was measured for a 1-element tensor (discuss.pytorch.org/t/73021); it ranges roughly
      300–800 MiB with the GPU, driver and CUDA lazy loading. Not yet calibrated on our own GPUs.
    - ``allocator_fragmentation``: memory the PyTorch caching allocator reserves beyond what tensors use at
      the peak, as a fraction of that peak. 5% is a working assumption (uncalibrated).
    - ``ddp_bucket_as_grad_copy``: PyTorch DDP copies gradients into flat communication buckets unless
      ``gradient_as_bucket_view=True``; the PyTorch docs state the saving equals the total gradient size.
    - ``zero_bucket_elements_per_hidden_sq``: DeepSpeed reduce/all-gather bucket in elements, as a multiple
      of hidden², the Hugging Face integration's ``"auto"`` value (reduce_bucket_size = hidden²).
    """

    cuda_context_bytes: float = 723 * 2**20
    allocator_fragmentation: float = 0.05
    ddp_bucket_as_grad_copy: bool = True
    zero_bucket_elements_per_hidden_sq: float = 1.0

    def __post_init__(self) -> None:
        for name in ("cuda_context_bytes", "allocator_fragmentation", "zero_bucket_elements_per_hidden_sq"):
            if getattr(self, name) < 0:
                raise SpecError(f"memory assumption {name} must be zero or positive, got {getattr(self, name)}",
                                key="error.assumptions.memory_non_negative",
                                fields={"name": name, "value": getattr(self, name)})


@dataclass(frozen=True, slots=True, kw_only=True)
class PerformanceAssumptions:
    """Achieved-vs-peak efficiencies of the time model, as named, overridable inputs.

    Defaults are starting points with their evidence; ``benchmarks/calibrate.py`` fits them to the
    calibration half of the published references and ``docs/accuracy.md`` reports both halves.

    - ``gemm_peak_fraction``: the best fraction of the dense peak a large GEMM reaches. H100 SXM bf16: an
      8192³ matmul ran at 798 of 989 TFLOP/s (0.81) on our device machines (.library/device/KINDS.md);
      stas00/ml-engineering's MAMF tables give 0.7–0.8 across A100/H100/MI300X.
    - ``gemm_half_work_flops``: the GEMM size (FLOPs) at which efficiency is half of that best: small GEMMs
      cannot fill the GPU (waves, tile quantisation). eff(F) = peak_fraction · F / (F + half_work).
    - ``attention_peak_fraction``: FlashAttention-2/3 forward reaches 50–75% of peak on A100/H100 (Dao 2023,
      arXiv:2307.08691 §4; Shah et al. 2024, arXiv:2407.08608).
    - ``memory_bandwidth_fraction``: achieved share of peak HBM bandwidth for streaming kernels (a
      device-to-device copy moved 3.0 of 3.35 TB/s on H100: 0.9).
    - ``kernel_overhead_s``: fixed launch/synchronisation cost per kernel.
    - ``network_bandwidth_fraction``: achieved share of a link's peak for large collectives (NCCL bus
      bandwidth on NVLink and InfiniBand is typically 75–90% of the line rate).

    Training only (``core/training_time.py``; fitted by ``benchmarks/calibrate_training.py`` on the 14
    calibration cases of ``tests/golden/data/training_throughput.toml`` that are not known gaps, the shared
    fields above left at their measured values; refitted after the FP8 cast, MoE dispatch, eager-dropout,
    TP-overlap and FlashAttention-2-on-Hopper (``Accelerator.ampere_attention_ratio``) terms: calibration median
    |error| 3.5%, held-out 5.7% without its known gaps, 6.6% with them):

    - ``training_attention_peak_fraction``: FlashAttention's achieved share of peak in training, forward and
      backward kernels together (serving's prefill uses ``attention_peak_fraction``). Below FlashAttention-2's
      forward figures (50-73% on A100, Dao 2023): the backward and causal kernels run slower, MPT's Triton
      ALiBi kernel slower still. It is the share on Ampere and for Hopper-native kernels; FlashAttention-2 and
      SDPA on Hopper run at ``Accelerator.ampere_attention_ratio`` of it (0.48: ~35% of H100's peak, Shah et
      al. 2024, against up to 73% of A100's).
    - ``unfused_elementwise_traffic``: how many times the memory traffic of our minimal elementwise kernels
      (norms, activation, RoPE, residual adds, embedding) a framework moves when it runs them as separate
      PyTorch eager ops (FSDP/torchtitan, llm-foundry, DeepSpeed, HF: fp32 up-casts in norms, one kernel per
      operator) instead of Megatron-LM's fused kernels (1.0 there). Evidence: torch.compile, which fuses
      exactly these ops, speeds torchtitan's Llama 3.1 8B on H100 by 16% (5,762 → 6,667 tokens/s/GPU,
      torchtitan benchmarks/llama3_h100_202412_torchtitan.md Table 1); the fitted 3.0 predicts 10% there.
    - ``overlapped_comm_slowdown``: the share of a collective's time that still lengthens the step when it runs
      hidden behind compute (data-parallel gradient reduction, FSDP/ZeRO-3 gathers): NCCL kernels hold SMs
      (~24 thread blocks of an H100's 132) and HBM bandwidth, so the compute they overlap runs slower, and a
      GEMM sized to one wave spills into a second (a one-wave GEMM ran ~2x slower beside an all-gather:
      forums.developer.nvidia.com/t/337991). 0 is perfect overlap, 1 no overlap.

    Inference only (``core/inference_time.py``; fitted by ``benchmarks/calibrate_inference.py`` on the
    calibration half of ``tests/golden/data/inference_perf.toml``, the training fields above left alone):

    - ``decode_bandwidth_fraction``: achieved share of peak memory bandwidth for the memory-bound kernels of
      serving (decode GEMVs and skinny GEMMs reading weights, paged-attention KV reads, elementwise ops).
    - ``quantized_weight_bandwidth_fraction``: a further factor on the bandwidth of weight reads in
      weight-only quantized formats (int4/GPTQ/AWQ/NF4/GGUF), whose kernels unpack and rescale in registers
      (Marlin, llama.cpp MMVQ) instead of streaming at the copy rate.
    - ``graph_kernel_overhead_s``: per-kernel gap inside a captured CUDA graph (decode in vLLM, SGLang,
      TensorRT-LLM): the CPU launch cost is gone, the GPU's launch latency and tail are not.
    - ``engine_step_overhead_s``: CPU time per engine step that does not overlap the GPU in the Python serving
      loops of vLLM, SGLang, TensorRT-LLM's PyTorch backend and transformers (scheduling, input preparation,
      sampling, detokenisation).
    - ``native_step_overhead_s``: the same for llama.cpp's C++ loop (graph build, CPU sampling over the
      vocabulary), much smaller than a Python scheduler's.
    - ``engine_request_overhead_s``: CPU time per request a busy server spends outside the GPU's shadow
      (admission, per-request bookkeeping and output handling in the engine loop); matters at max load with
      short requests, where hundreds of requests finish each second.
    - ``collective_overhead_s``: fixed cost of one small collective kernel (vLLM custom all-reduce ~5 µs,
      NCCL ~10 µs for a few KB on NVLink; nccl-tests), on top of the α–β model.
    - ``eager_python_overhead_s_per_layer``: transformers ``generate()`` in eager mode is bound by Python and
      PyTorch dispatch at small batch: ~30 operators per decoder layer at ~10 µs each (uncalibrated).
    - ``host_memory_bandwidth_bytes_per_s``: the host DRAM bandwidth llama.cpp's CPU-resident layers stream
      from when the host is not given (dual-channel DDR5-6400: 102 GB/s; uncalibrated).
    - ``low_precision_gemm_ratio``: 8-bit and narrower GEMMs (fp8, int8) reach a smaller fraction of their
      doubled peak than 16-bit ones do of theirs: best-shape matmuls on H100 SXM ran at 1402.6 of 1978.9 fp8
      TFLOP/s (0.709) against 794.5 of 989.4 bf16 (0.803) (stas00/ml-engineering MAMF), a ratio of 0.88.
      Measured, not fitted; applied by the serving model on top of ``gemm_peak_fraction``.
    - ``block_scaled_gemm_peak_fraction``: the best fraction of the fp8 peak that GEMMs on block-scaled fp8
      weights reach (DeepSeek-V3's recipe: a scale per 128×128 weight block and per 1×128 activation group,
      applied in the kernel's main loop, arXiv:2412.19437 §3.3.2), replacing ``gemm_peak_fraction`` ×
      ``low_precision_gemm_ratio`` for them. vLLM's kernels on H100 SXM, DeepSeek-V3's N=2112 K=7168 at
      M = 4096-16384 tokens: Triton 403-407 TFLOP/s (0.20-0.21 of 1979), CUTLASS 457-490 (0.23-0.25), where
      the same shape in bf16 ran at 716 of 989 (0.72) (vLLM PR #23280, benchmark table). DeepGEMM reaches
      0.49-0.69 on large shapes (vLLM PR #13917: 970 TFLOP/s at 1024×18432×7168; DeepGEMM README: up to
      1358): raise it for an engine that runs DeepGEMM. Measured, not fitted.
    - ``block_scaled_gemm_latency_s``: time a block-scaled fp8 GEMM kernel takes beyond its roofline and
      launch, whatever its size: vLLM's Triton kernel took 23.3 µs for N=2112 K=7168 at M=1 and at M=16 on
      H100 SXM (1.30 and 20.8 TFLOP/s, vLLM PR #23280), where reading its 15.1 MB of weights takes 5.5 µs at
      ``decode_bandwidth_fraction`` and cuBLAS bf16 ran the same shape (twice the bytes) in 9.9 µs; 23.3 −
      5.5 − 2.5 (``graph_kernel_overhead_s``) = 15 µs. SGLang's tables for DeepSeek-V3's TP8 shapes show the
      same floor: 13-32 µs for N=512 K=7168 and N=3072 K=1536 (1.8-3.7 MB) across DeepGEMM, CUTLASS and
      Triton (sglang PRs #5207, #5820). Measured, not fitted.
    - ``moe_dispatch_kernels``: small kernels a mixture-of-experts layer runs besides its router and expert
      GEMMs, each costing a launch: in vLLM's fused-MoE path, the top-k over the router scores and its
      renormalisation (2), ``moe_align_block_size`` sorting the token-expert pairs by expert with its buffer
      fills (3), the activation between the two expert GEMMs (1) and ``moe_sum`` weighting the top-k outputs
      back into one row per token (1): 7 (vllm/model_executor/layers/fused_moe/fused_moe.py: fused_topk,
      moe_align_block_size, fused_experts). Counted, not fitted. DeepSeek-V3's group-limited routing ran as
      ~15 more PyTorch ops in early-2025 engines (vLLM's ``grouped_topk``); those are not counted, as the
      model spec does not carry ``n_group``.
    - ``eager_training_ops_per_layer`` / ``eager_training_ops_fixed``: the eager PyTorch operator calls one
      training step of transformers' Llama makes per decoder layer, and once per step (embedding, rotary
      tables, final norm, head, loss, fused AdamW and its step counter), forward and backward: 200 and 66
      top-level ``aten::`` calls (those no other aten call issued: views, transposes, reshapes and dtype checks
      included, as each passes through the dispatcher and autograd), counted with ``torch.profiler`` on one
      step (SDPA, tied embedding, fused AdamW, ``zero_grad(set_to_none=True)``; transformers 5.23, torch 2.13)
      as the difference between 1-, 2- and 3-layer models (``benchmarks/count_eager_ops.py``). Nested calls
      (641 aten events per layer in all) run inside their caller's dispatch and are not counted. On a CPU
      accelerator each call pays ``eager_call_overhead_s`` in series with the work (``core/training_block``).
      Counted, not fitted.
    - ``eager_call_overhead_s``: what one of those calls costs on a CPU, Python module code and autograd's
      engine included; None takes ``kernel_overhead_s``. ``suanli bench`` measures it on the CPU
      (``suanli.measure.eager_ops.eager_call_s``: a tiny transformers training step over its counted calls) and
      ``--calibration`` sets it.
    - ``moe_load_imbalance``: routed tokens of the busiest expert-parallel rank over the mean; it sets the time
      of the grouped expert GEMMs and of the all-to-all in training (``core/moe_time.py``). 1.0 is balanced
      routing, what the NVIDIA NeMo / Megatron-Bridge MoE benchmarks force (``moe_router_force_load_balancing``,
      their performance summary's note). A token-dropping run caps it at its capacity factor: 1.25 in GShard
      (Lepikhin et al. 2020, arXiv:2006.16668 §2.2) and Switch Transformer (Fedus et al. 2021,
      arXiv:2101.03961 §2.2, capacity factors 1.0-2.0); a dropless run with only an auxiliary loss can exceed
      it early in training. Not fitted.
    """

    gemm_peak_fraction: float = 0.80
    gemm_half_work_flops: float = 2e9
    attention_peak_fraction: float = 0.60
    memory_bandwidth_fraction: float = 0.85
    kernel_overhead_s: float = 5e-6
    network_bandwidth_fraction: float = 0.80
    # training-only: fitted by benchmarks/calibrate_training.py (calibration half, known gaps left out)
    training_attention_peak_fraction: float = 0.36
    unfused_elementwise_traffic: float = 3.0
    overlapped_comm_slowdown: float = 0.75
    decode_bandwidth_fraction: float = 0.825  # fitted (benchmarks/calibrate_inference.py)
    quantized_weight_bandwidth_fraction: float = 1.0  # fitted: no penalty seen on llama.cpp Q8_0 (one case)
    graph_kernel_overhead_s: float = 2.5e-6  # fitted
    engine_step_overhead_s: float = 2.25e-3  # fitted
    native_step_overhead_s: float = 0.0  # fitted (at its bound)
    engine_request_overhead_s: float = 7e-4  # fitted
    collective_overhead_s: float = 1e-5  # fitted
    eager_python_overhead_s_per_layer: float = 3e-4
    host_memory_bandwidth_bytes_per_s: float = 100e9
    low_precision_gemm_ratio: float = 0.88
    block_scaled_gemm_peak_fraction: float = 0.21  # measured (vLLM Triton, H100), not fitted
    block_scaled_gemm_latency_s: float = 15e-6  # measured (vLLM Triton, H100), not fitted
    moe_dispatch_kernels: int = 7  # counted (vLLM fused_moe), not fitted
    eager_training_ops_per_layer: int = 200  # counted (torch.profiler, transformers Llama), not fitted
    eager_training_ops_fixed: int = 66  # counted likewise: embedding, head, loss, optimizer
    eager_call_overhead_s: float | None = None  # measured by suanli bench on a CPU; None: kernel_overhead_s
    moe_load_imbalance: float = 1.0  # balanced routing, as the NeMo MoE benchmarks force; not fitted

    def __post_init__(self) -> None:
        for name in ("gemm_peak_fraction", "attention_peak_fraction", "memory_bandwidth_fraction",
                     "network_bandwidth_fraction", "training_attention_peak_fraction"):
            _require_fraction(name, getattr(self, name))
        if not 0 <= self.overlapped_comm_slowdown <= 1:
            raise SpecError("performance assumption overlapped_comm_slowdown must be in [0, 1], got "
                            f"{self.overlapped_comm_slowdown}", key="error.assumptions.overlapped_comm_slowdown",
                            fields={"value": self.overlapped_comm_slowdown})
        if self.moe_load_imbalance < 1:
            raise SpecError("performance assumption moe_load_imbalance is the busiest expert-parallel rank's routed "
                            f"tokens over the mean and must be at least 1 (balanced), got {self.moe_load_imbalance}",
                            key="error.assumptions.moe_load_imbalance", fields={"value": self.moe_load_imbalance})
        if self.unfused_elementwise_traffic < 1:
            raise SpecError("performance assumption unfused_elementwise_traffic must be at least 1 (fused "
                            f"kernels), got {self.unfused_elementwise_traffic}",
                            key="error.assumptions.unfused_elementwise_traffic",
                            fields={"value": self.unfused_elementwise_traffic})
        for name in ("gemm_half_work_flops", "kernel_overhead_s", "eager_training_ops_per_layer",
                     "eager_training_ops_fixed"):
            _require_non_negative(name, getattr(self, name))
        self._check_inference_fields()
        if self.eager_call_overhead_s is not None:
            _require_non_negative("eager_call_overhead_s", self.eager_call_overhead_s)

    def _check_inference_fields(self) -> None:
        for name in ("decode_bandwidth_fraction", "quantized_weight_bandwidth_fraction", "low_precision_gemm_ratio",
                     "block_scaled_gemm_peak_fraction"):
            _require_fraction(name, getattr(self, name))
        for name in ("graph_kernel_overhead_s", "engine_step_overhead_s", "native_step_overhead_s",
                     "engine_request_overhead_s",
                     "collective_overhead_s",
                     "eager_python_overhead_s_per_layer", "block_scaled_gemm_latency_s", "moe_dispatch_kernels"):
            _require_non_negative(name, getattr(self, name))
        if not self.host_memory_bandwidth_bytes_per_s > 0:
            raise SpecError("performance assumption host_memory_bandwidth_bytes_per_s must be positive, got "
                            f"{self.host_memory_bandwidth_bytes_per_s}", key="error.assumptions.host_memory_bandwidth",
                            fields={"value": self.host_memory_bandwidth_bytes_per_s})


def _require_fraction(name: str, value: float) -> None:
    """A performance assumption that is a fraction of a peak: in (0, 1]."""
    if not 0 < value <= 1:
        raise SpecError(f"performance assumption {name} must be in (0, 1], got {value}",
                        key="error.assumptions.performance_fraction", fields={"name": name, "value": value})


def _require_non_negative(name: str, value: float) -> None:
    """A performance assumption that is a count, a time or a size: zero or more."""
    if value < 0:
        raise SpecError(f"performance assumption {name} must be zero or positive, got {value}",
                        key="error.assumptions.performance_non_negative", fields={"name": name, "value": value})


@dataclass(frozen=True, slots=True, kw_only=True)
class CostAssumptions:
    """Power, facility, grid, storage and reliability inputs of ``core/cost.py``, with their evidence.

    - ``power_fraction_of_tdp``: average draw as a fraction of rated power, applied to the GPUs and the host
      alike. An 8x H100 HGX node training compute-heavy models ran at 76% of its 10.2 kW rating (Newkirk
      et al. 2025, arXiv:2506.14551); the highest draw seen on such a node was 8.4 kW, 82% (Latif et al. 2024,
      arXiv:2412.08602). Meta's Llama accounting uses the TDP itself (1.0); Patterson et al. 2021 (Table 4)
      measured 330 W per V100 (TDP 300 W) host included, and TPU v3 at 283 W against a 450 W TDP.
    - ``host_overhead_fraction``: CPUs, memory, NICs, NVSwitches, fans and power supplies as a fraction of the
      GPUs' power. DGX H100: 10.2 kW system maximum against 8 x 700 W of GPUs, (10.2 - 5.6) / 5.6 = 0.82
      (NVIDIA DGX H100 datasheet / user guide); DGX A100 is 6.5 kW against 8 x 400 W (1.03), DGX B200
      14.3 kW against 8 x 1000 W (0.79).
    - ``pue``: facility energy / IT energy. 1.1 is hyperscale: Google's datacentres ran at 1.09-1.12 and
      Azure at 1.10 for the models in Patterson et al. 2021 Table 4, and Meta's Llama accounting uses 1.1.
      The industry average is 1.58 (Uptime Institute Global Data Center Survey 2023): use ~1.5 for a typical
      enterprise or colocation site.
    - ``grid_kg_co2e_per_kwh``: carbon intensity of the electricity. 0.48 is the world average for 2023
      (Ember, Global Electricity Review 2024: 480 gCO2/kWh). Published training estimates use the US average:
      0.385 (Touvron et al. 2023, LLaMA §6) or 0.429 (Patterson et al. 2021); low-carbon grids reach 0.057
      (BLOOM on the French grid, Luccioni et al. 2022).
    - ``checkpoint_write_bytes_per_s_per_gpu``: each GPU's share of the storage write bandwidth when all
      write at once. Meta's Llama 3 storage fabric sustains 2 TB/s for up to 16K H100s (Llama 3 paper,
      arXiv:2407.21783 §3.3.1): 2e12 / 16,384 = 122 MB/s per GPU. A small job writing to local NVMe gets
      several GB/s per node: raise it there. Reading a checkpoint back is assumed as fast as writing it.
    - ``restart_setup_s``: relaunch after an interruption, before the checkpoint is read: rescheduling or
      re-acquiring nodes, process start, NCCL initialisation. 300 s is a working assumption (uncalibrated).
    - ``gpu_mtbi_s``: mean time between job-stopping interruptions per GPU (a job on N GPUs sees 1/N of it).
      Llama 3 405B pre-training saw 419 unexpected interruptions in 54 days on 16,384 H100s (Llama 3 paper
      §3.3.4): 54 d x 16,384 / 419 = 50,700 GPU-hours.
    - ``export_bytes_per_param``: weights-only export in bf16 (2 bytes), the usual safetensors release format.
    """

    power_fraction_of_tdp: float = 0.76
    host_overhead_fraction: float = 0.82
    pue: float = 1.1
    grid_kg_co2e_per_kwh: float = 0.48
    checkpoint_write_bytes_per_s_per_gpu: float = 2e12 / 16_384
    restart_setup_s: float = 300.0
    gpu_mtbi_s: float = 54 * 86_400 * 16_384 / 419
    export_bytes_per_param: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.power_fraction_of_tdp <= 1:
            raise SpecError(f"cost assumption power_fraction_of_tdp must be in (0, 1], got "
                            f"{self.power_fraction_of_tdp}; 1.0 counts every GPU at its TDP",
                            key="error.assumptions.power_fraction_of_tdp", fields={"value": self.power_fraction_of_tdp})
        if self.pue < 1:
            raise SpecError(f"cost assumption pue must be at least 1 (facility energy / IT energy), got {self.pue}",
                            key="error.assumptions.cost_pue", fields={"pue": self.pue})
        for name in ("host_overhead_fraction", "grid_kg_co2e_per_kwh", "restart_setup_s"):
            if getattr(self, name) < 0:
                raise SpecError(f"cost assumption {name} must be zero or positive, got {getattr(self, name)}",
                                key="error.assumptions.cost_non_negative",
                                fields={"name": name, "value": getattr(self, name)})
        for name in ("checkpoint_write_bytes_per_s_per_gpu", "gpu_mtbi_s", "export_bytes_per_param"):
            if not getattr(self, name) > 0:
                raise SpecError(f"cost assumption {name} must be positive, got {getattr(self, name)}",
                                key="error.assumptions.cost_positive",
                                fields={"name": name, "value": getattr(self, name)})


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnershipAssumptions:
    """Inputs of ``core/tco.py`` (buy versus rent) beyond the power inputs of ``CostAssumptions``, with evidence.

    - ``usd_per_kwh``: electricity price. 0.0806 is the 2023 US average industrial retail price (EIA, 8.06 ¢/kWh,
      as tabulated in github:epoch-research/training-cost-trends energy.py). States differ by 3x: industrial
      6.60 ¢ in Texas, 18.64 ¢ in California (EIA Electric Power Annual 2023, average revenue per kWh by state);
      a household pays about twice the industrial price.
    - ``pue``: facility energy / IT energy of the site that runs the bought hardware. 1.58 is the industry
      average (Uptime Institute Global Data Center Survey 2023); hyperscale sites reach 1.1; a desk-side
      workstation has no facility overhead (1.0).
    - ``server_cost_multiplier``: server price / the price of its GPUs bought as cards, for prices of cards alone
      (the host's CPUs, memory, NICs, NVSwitch and chassis). Epoch AI compares DGX prices with single-card list
      prices: 1.66 (A100), 1.69 (V100), 1.54 (P100), mean 1.64 (github:epoch-research/training-cost-trends
      hardware.py get_server_cost_overhead; Cottier et al. 2024, "The rising costs of training frontier AI
      models", arXiv:2405.21015). Node prices include the host and are used as they are.
    - ``cluster_interconnect_multiplier``: the scale-out network (switches, cables, transceivers) of a cluster of
      more than one server, as a multiple of the servers' price: 1.15 (Epoch AI, same repository,
      CLUSTER_INTERCONNECT_COST_OVERHEAD).
    - ``gpus_per_server``: GPUs one server holds (HGX / DGX boards: 8); cards beyond it need a second server.
    - ``colocation_usd_per_kw_month``: rent of data-centre space, power and cooling per kW of IT load, None for
      none (your own room). CBRE's average asking rate for 250-500 kW in North American primary markets was
      $184.06 per kW per month in H2 2024 (CBRE, North America Data Center Trends H2 2024, 2025-02-26).
    - ``maintenance_fraction_per_year``: support and repair contracts per year as a fraction of the hardware
      price, 0 by default; a DGX support contract is quoted at about 20% of the base price per year
      (supercluster.blog/p/4-nvidia-dgx-h100-hardware).
    """

    usd_per_kwh: float = 0.0806
    pue: float = 1.58
    server_cost_multiplier: float = 1.64
    cluster_interconnect_multiplier: float = 1.15
    gpus_per_server: int = 8
    colocation_usd_per_kw_month: float | None = None
    maintenance_fraction_per_year: float = 0.0

    def __post_init__(self) -> None:
        if not self.usd_per_kwh > 0:
            raise SpecError(f"electricity price must be positive, got {self.usd_per_kwh} USD/kWh; pass e.g. 0.08",
                            key="error.assumptions.usd_per_kwh", fields={"value": self.usd_per_kwh})
        if self.pue < 1:
            raise SpecError(f"pue must be at least 1 (facility energy / IT energy), got {self.pue}",
                            key="error.assumptions.ownership_pue", fields={"pue": self.pue})
        for name in ("server_cost_multiplier", "cluster_interconnect_multiplier"):
            if getattr(self, name) < 1:
                raise SpecError(f"ownership assumption {name} is a multiple of the GPUs' price and must be at least "
                                f"1, got {getattr(self, name)}", key="error.assumptions.price_multiplier",
                                fields={"name": name, "value": getattr(self, name)})
        if self.gpus_per_server < 1:
            raise SpecError(f"gpus_per_server must be at least 1, got {self.gpus_per_server}",
                            key="error.assumptions.gpus_per_server", fields={"value": self.gpus_per_server})
        if self.colocation_usd_per_kw_month is not None and not self.colocation_usd_per_kw_month > 0:
            raise SpecError(f"colocation price must be positive, got {self.colocation_usd_per_kw_month} USD/kW/month",
                            key="error.assumptions.colocation_price",
                            fields={"value": self.colocation_usd_per_kw_month})
        if self.maintenance_fraction_per_year < 0:
            raise SpecError(f"maintenance fraction must be zero or positive, got {self.maintenance_fraction_per_year}",
                            key="error.assumptions.maintenance_fraction",
                            fields={"value": self.maintenance_fraction_per_year})
