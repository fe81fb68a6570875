"""``--gpu local``: the accelerator of this machine, found by ``suanli probe`` when, and only when, it is asked for.

``resolve_accelerator`` is ``get_accelerator`` plus the name ``local``: the first GPU's catalog entry, or with no
GPU the CPU's (the catalog entry, or one built from the probe: ``suanli.spec.local_device``). The probe runs
once per process. ``apply_local_defaults`` fills what the machine implies where the user left it unset: the
number of identical local GPUs for ``--gpus`` (train), and the device's saved calibration profile.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from suanli.measure.probe import LocalDevice
    from suanli.spec.hardware import Accelerator

LOCAL = "local"


def is_local(name: str | None) -> bool:
    """Whether ``name`` (a --gpu value) asks for this machine's device."""
    return name is not None and name.strip().lower() == LOCAL


@functools.cache
def local_device() -> LocalDevice:
    """Probe this machine once per process and return what ``local`` stands for."""
    from suanli.measure.probe import local_device as from_probe
    from suanli.measure.probe import probe

    return from_probe(probe())


def resolve_accelerator(name: str) -> Accelerator:
    """The accelerator a --gpu value names: a catalog key or alias, or ``local``."""
    import difflib

    from suanli.errors import UnknownAccelerator
    from suanli.spec.hardware import get_accelerator

    if is_local(name):
        return local_device().accelerator
    try:
        return get_accelerator(name)
    except UnknownAccelerator:
        if difflib.get_close_matches(name.strip().lower(), [LOCAL], cutoff=0.7):
            raise UnknownAccelerator(f"unknown accelerator {name!r}; did you mean local (this machine's device, "
                                     "see `suanli probe`)?",
                                     key="error.cli.did_you_mean_local", fields={"name": name}) from None
        raise


def apply_local_defaults(args: argparse.Namespace, *, set_gpus: bool = False) -> None:
    """With ``--gpu local``: say on stderr what it resolved to; with ``set_gpus``, an unset ``--gpus`` (and
    ``--dp``) becomes the number of identical local GPUs when tp x pp x cp divides it; an unset
    ``--calibration`` becomes the device's saved profile, when one exists."""
    if not is_local(getattr(args, "gpu", None)):
        return
    device = local_device()
    model_parallel = (getattr(args, "tp", None) or 1) * (getattr(args, "pp", None) or 1) * (
        getattr(args, "cp", None) or 1)
    if set_gpus and device.count > 1 and args.gpus is None and getattr(args, "dp", None) is None \
            and device.count % model_parallel == 0:
        args.gpus = device.count
    if getattr(args, "calibration", LOCAL) is None and (profile := saved_profile(device.accelerator.key)):
        args.calibration = str(profile)
    if not getattr(args, "json", False):
        from suanli.i18n import say, t

        calibrated = t("value.local.calibration", path=args.calibration) if getattr(args, "calibration", None) else ""
        sys.stderr.write(f"suanli: {say(device.note)}{calibrated}\n")


def saved_profile(device_key: str) -> Path | None:
    """The calibration profile ``suanli bench`` saved for this device, if any (``spec.calibration.find_profile``)."""
    from suanli.spec.calibration import find_profile

    return find_profile(device_key)
