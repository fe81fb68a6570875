"""``--export TARGET DIR``: write a plan's runnable files (``suanli.export``) into a folder, all or nothing.

The files are written into a fresh temporary folder beside DIR first, then moved into place, so a failure never
leaves a partial export. A DIR that already holds files is refused (exit 2) unless ``--force``, which replaces
the files of the same names and leaves the others alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from suanli.export import Export
    from suanli.simulate.api import Deployment
    from suanli.simulate.workload import Workload
    from suanli.spec.hardware import Accelerator
    from suanli.spec.layout import Layout
    from suanli.spec.model import ModelSpec
    from suanli.spec.training import TrainingJob

TRAINING = ("deepspeed", "accelerate", "fsdp", "torchrun", "megatron")  # fsdp: accelerate's FSDP config
SERVING = ("vllm", "sglang", "trtllm")


def add_export_option(parser: argparse.ArgumentParser, targets: tuple[str, ...]) -> None:
    parser.add_argument("--export", nargs=2, metavar=("TARGET", "DIR"),
                        help=f"write the runnable config files and launch script into DIR (TARGET: "
                        f"{', '.join(targets)}); a DIR holding files needs --force")
    if not any("--force" in action.option_strings for action in parser._actions):
        parser.add_argument("--force", action="store_true", help="with --export: overwrite files in a non-empty DIR")


def model_id(name: str) -> str:
    """What an engine or script loads for MODEL: the Hub repo id of a catalog model, else MODEL as given."""
    from suanli.spec.resolve import find_catalog_model

    entry = find_catalog_model(name)
    return entry.hf_repo if entry is not None and entry.hf_repo else name


def write_export(export: Export, directory: Path, *, force: bool) -> dict[str, Any]:
    """Write ``export`` into ``directory`` (module docstring); returns the JSON block describing it."""
    import os
    import shutil
    import tempfile

    from suanli.errors import SpecError

    if directory.exists() and not directory.is_dir():
        raise SpecError(f"--export {directory}: a file of that name exists; give a folder name",
                        key="error.export.file_exists", fields={"directory": directory})
    existing = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    if existing and not force:
        shown = ", ".join(existing[:3]) + (", …" if len(existing) > 3 else "")
        raise SpecError(f"--export folder {directory} already holds files ({shown}); choose an empty or new folder, "
                        "or add --force to overwrite the export's files",
                        key="error.export.not_empty", fields={"directory": directory, "shown": shown})
    parent = directory.resolve().parent
    if not parent.is_dir():
        raise SpecError(f"--export {directory}: the folder {parent} does not exist",
                        key="error.export.no_parent", fields={"directory": directory, "parent": parent})
    staging = Path(tempfile.mkdtemp(prefix=".suanli-export-", dir=parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the folder it becomes is an ordinary one
    try:
        for name, text in export.files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            if name.endswith(".sh"):
                path.chmod(0o755)
        if not directory.exists():
            os.rename(staging, directory)
        else:
            for name in export.files:
                (directory / name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / name, directory / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"target": export.target, "dir": str(directory), "files": sorted(export.files), "command": export.command,
            "notes": list(export.notes)}


def export_text(block: dict[str, Any]) -> str:
    """The lines the text output prints after an export."""
    from suanli.i18n import say, t

    lines = [t("value.export.done", target=block["target"], dir=block["dir"], files=", ".join(block["files"])),
             t("value.export.run"), block["command"]]
    lines += [t("value.export.note", note=say(note)) for note in block["notes"]]
    return "\n".join(lines)


def check_target(args: argparse.Namespace, targets: tuple[str, ...]) -> None:
    """Refuse an unknown ``--export`` target before any work is done."""
    from suanli.errors import NotFound, close_matches, suggest

    if args.export and args.export[0].strip().lower() not in targets:
        name = args.export[0]
        raise NotFound(f"unknown --export target {name!r}{suggest(name.lower(), targets)}; use one of "
                       f"{', '.join(targets)}",
                       key="error.export.unknown_target",
                       fields={"name": name, "suggestions": close_matches(name.lower(), targets),
                               "targets": ", ".join(targets)})


def export_training_job(args: argparse.Namespace, spec: ModelSpec, job: TrainingJob, layout: Layout,
                        accelerator: Accelerator) -> dict[str, Any]:
    """``suanli train --export``: the training plan as files in DIR."""
    from suanli.export import TrainingPlan, export_training

    target, folder = args.export
    half = args.precision if args.precision in ("bf16", "fp16") else "bf16"
    plan = TrainingPlan(spec=spec, job=job, layout=layout, accelerator=accelerator, model_id=model_id(args.model),
                        half=half, tokens=args.tokens)
    return write_export(export_training(target, plan), Path(folder), force=args.force)


def export_deployment(args: argparse.Namespace, spec: ModelSpec, deployment: Deployment,
                      workload: Workload) -> dict[str, Any]:
    """``suanli simulate --export``: the deployment as a launch script in DIR, its context --max-model-len or sized
    to the longest request simulated (an engine refuses to start when its context exceeds the KV pool)."""
    from suanli.export import ServingPlan, export_serving

    target, folder = args.export
    longest = max((r.prompt_tokens + r.output_tokens for r in workload.trace), default=0) or \
        workload.prompt.max + workload.output.max
    chosen = deployment.knobs.max_model_len  # --max-model-len, else the longest request
    plan = ServingPlan(spec=spec, deployment=deployment, model_id=model_id(args.model),
                       max_model_len=chosen or min(longest, spec.max_position_embeddings))
    return write_export(export_serving(target, plan), Path(folder), force=getattr(args, "force", False))
