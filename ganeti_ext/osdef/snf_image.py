"""What each snf-image OS script does, given its parsed environment.

This version deploys nothing itself: it supports instances whose disk storage already
cloned the image (img_id=null). Image stores, personalization and progress reports come
later; until then every other request fails with a clear message instead of a fake
success.
"""

from __future__ import annotations

import logging

from ganeti_ext.environ import osapi
from ganeti_ext.errors import ValidationError
from ganeti_ext.osdef import transfer
from ganeti_ext.osdef.params import SnfImageParams, parse_params

log = logging.getLogger(__name__)

CHECKS = ("parameters",)  # the checks `verify` knows (OS API 20 defines only this one)


def verify(settings: osapi.OsSettings, checks: list[str]) -> SnfImageParams:
    """`verify parameters`: check the OS parameters."""
    for check in checks or list(CHECKS):
        if check not in CHECKS:
            raise ValidationError(f"verify: unknown check {check!r} (known: {', '.join(CHECKS)})")
    params = parse_params(settings.params)
    log.info("OS parameters are valid: %s", params)
    return params


def create(request: osapi.CreateRequest) -> None:
    """Prepare the instance's disk: for now only "the disk already holds the image"."""
    params = parse_params(request.os.params)
    instance = request.instance
    if params.config_url is not None:
        raise ValidationError(
            "OS parameter config_url: fetching parameters from a URL is not supported yet "
            "by this version"
        )
    if params.img_id is None:
        raise ValidationError("OS parameter img_id: required to create an instance")
    if not params.is_null_image:
        raise ValidationError(
            "OS parameter img_id: image stores are not supported yet by this version "
            "(only img_id=null, for disks cloned by the storage, is)"
        )
    if not instance.disks:
        raise ValidationError(f"instance {instance.name} has no disks to hold the image")
    log.info(
        "%s %s: img_id=null, disk 0 (%s) already holds the image; nothing to write",
        "reinstalling" if request.reinstall else "creating",
        instance.name,
        instance.disks[0].path or instance.disks[0].uri,
    )


def rename(request: osapi.RenameRequest) -> None:
    """Nothing to change inside the disk: this version does not personalize it."""
    log.info(
        "instance %s renamed to %s; no hostname to update on the disk",
        request.old_name,
        request.instance.name,
    )


def import_disk(request: osapi.TransferRequest) -> None:
    transfer.import_disk(request)


def export_disk(request: osapi.TransferRequest) -> None:
    transfer.export_disk(request)
