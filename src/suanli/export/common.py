"""What every export shares: the ``Export`` value, the plans it is made from, and shell quoting.

An export is pure data: relative file names mapped to their text, the launch command, and notes naming what the
target cannot express exactly as we estimated it. Writing the files is the CLI's job (``cli/export_arg.py``).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from suanli.errors import LayoutError, SpecError
from suanli.spec.hardware import Accelerator
from suanli.spec.layout import Layout
from suanli.spec.model import ModelSpec
from suanli.spec.training import Framework, PrecisionMode, TrainingJob

LAUNCH_FILE = "launch.sh"
MASTER_PORT = 29500  # torchrun's default rendezvous port (torch.distributed.run --master-port)


@dataclass(frozen=True, slots=True, kw_only=True)
class Export:
    """Files to write (relative path → text), the command that runs them, and notes for the user."""

    target: str
    files: Mapping[str, str]
    command: str
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for path in self.files:
            if path.startswith(("/", "..")) or "/../" in path or not path:
                raise SpecError(f"export file name {path!r} must be relative and stay inside the folder",
                                key="error.export.file_name", fields={"path": path})
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingPlan:
    """A training job laid out on GPUs: what the training exports are made from.

    ``model_id`` is what the user's script loads (a Hub repo id or a path); ``half`` the 16-bit type where the
    precision mode leaves it open (Megatron's mode is the same for bf16 and fp16).
    """

    spec: ModelSpec
    job: TrainingJob
    layout: Layout
    accelerator: Accelerator
    model_id: str
    gpus_per_node: int = 8
    half: str = "bf16"
    tokens: float | None = None  # training tokens of the whole run: sets the iteration count where one is needed

    def __post_init__(self) -> None:
        if self.half not in ("bf16", "fp16"):
            raise SpecError(f"half must be bf16 or fp16, got {self.half!r}", key="error.export.half",
                            fields={"half": self.half})
        if self.gpus_per_node < 1:
            raise SpecError(f"gpus_per_node must be at least 1, got {self.gpus_per_node}",
                            key="error.export.gpus_per_node", fields={"gpus_per_node": self.gpus_per_node})

    @property
    def nodes(self) -> int:
        return -(-self.layout.gpus // self.gpus_per_node)

    @property
    def procs_per_node(self) -> int:
        return min(self.layout.gpus, self.gpus_per_node)

    @property
    def dtype(self) -> str:
        """fp32, fp16, bf16 or fp8 (fp8 trains with bf16 around the fp8 GEMMs)."""
        mode = self.job.precision
        if mode is PrecisionMode.FP32:
            return "fp32"
        if mode is PrecisionMode.FP8:
            return "fp8"
        if mode in (PrecisionMode.AMP_FP16, PrecisionMode.MIXED_FP16):
            return "fp16"
        if mode is PrecisionMode.MIXED_FP32_GRADS:
            return self.half
        return "bf16"


def framework_note(plan: TrainingPlan, target: str, framework: Framework) -> tuple[str, ...]:
    """A note when the estimate assumed a framework whose model states or activations differ from the target's
    (DeepSpeed and FSDP keep the same states and run the same modelling code: spec/training.py)."""
    same = {Framework.DEEPSPEED: Framework.FSDP}
    job = plan.job.framework
    if job is framework or same.get(job, job) is same.get(framework, framework):
        return ()
    return (f"the estimate assumed --framework {job.value} (precision mode {plan.job.precision.value}); "
            f"{target} runs as --framework {framework.value}: re-estimate with that for the memory this export uses",)


def require_data_parallel_only(plan: TrainingPlan, target: str) -> None:
    """DeepSpeed's JSON and accelerate's FSDP YAML describe data parallelism with sharding, nothing else."""
    lay = plan.layout
    others = [f"{name}={value}" for name, value in (("tp", lay.tp), ("pp", lay.pp), ("cp", lay.cp), ("ep", lay.ep))
              if value > 1]
    if others:
        degrees = ", ".join(others)
        raise LayoutError(f"the {target} export covers data parallelism with ZeRO/FSDP sharding; this layout has "
                          f"{degrees}: use --export megatron", key="error.export.data_parallel_only",
                          fields={"target": target, "degrees": degrees})


def shell_line(words: Sequence[str]) -> str:
    """One command quoted for a POSIX shell (``$VAR`` words in double quotes so they expand), one flag and its
    value per continued line; words before the first flag (environment, program, model) share the first line."""
    lines: list[list[str]] = [[]]
    for word in words:
        quoted = f'"{word}"' if word.startswith("$") else shlex.quote(word)
        last = lines[-1]
        flag_seen = len(lines) > 1 or any(w.startswith("--") for w in last)
        value_of_flag = len(last) == 1 and last[0].startswith("--")
        if (word.startswith("--") and last) or (flag_seen and not value_of_flag):
            lines.append([quoted])
        else:
            last.append(quoted)
    return " \\\n  ".join(" ".join(line) for line in lines)


def script(body: Sequence[str], *, header: str) -> str:
    """A bash script: strict mode, a comment header, then the body lines."""
    comments = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return "#!/usr/bin/env bash\nset -euo pipefail\n" + comments + "\n" + "\n".join(body) + "\n"


def torchrun(plan: TrainingPlan, program: Sequence[str]) -> list[str]:
    """torchrun's words for this plan (torch/distributed/run.py: --nnodes, --nproc-per-node, --node-rank,
    --master-addr, --master-port)."""
    words = ["torchrun", "--nproc-per-node", str(plan.procs_per_node), "--nnodes", str(plan.nodes)]
    if plan.nodes > 1:
        words += ["--node-rank", "${NODE_RANK:?set NODE_RANK on each node}",
                  "--master-addr", "${MASTER_ADDR:?set MASTER_ADDR to node 0}", "--master-port", str(MASTER_PORT)]
    return [*words, *program]


def train_script_word() -> str:
    return "${TRAIN_SCRIPT:?set TRAIN_SCRIPT to your training script}"
