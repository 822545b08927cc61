"""What each snf-image OS script does, given its parsed environment.

create: (config_url) -> refuse what cannot be personalized -> write the image onto disk
0 unless img_id=null -> personalize it in the helper VM; progress goes to
snf-progress-monitor all along. rename: the new hostname, by the helper. verify: the
parameters, and that a local or store image exists. import/export: see transfer.py.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ganeti_ext.environ import osapi
from ganeti_ext.errors import GanetiExtError, ValidationError
from ganeti_ext.osdef import config_url, deploy, settings, sources, transfer
from ganeti_ext.osdef.deploy import Deployment
from ganeti_ext.osdef.helper import freshness, vm
from ganeti_ext.osdef.helper.config import (
    check_os_family,
    helper_config,
    properties,
    selected_tasks,
)
from ganeti_ext.osdef.helper.protocol import Event
from ganeti_ext.osdef.params import SnfImageParams, parse_params
from ganeti_ext.osdef.progress import Progress
from ganeti_ext.osdef.writer import path_size
from ganeti_ext.paths import DEFAULT, Paths

log = logging.getLogger(__name__)

CHECKS = ("parameters",)  # the checks `verify` knows (OS API 20 defines only this one)
GIB = 1024**3
RENAME_TASKS = ["MountImage", "AssignHostname", "UmountImage"]


def verify(
    os_settings: osapi.OsSettings, checks: list[str], paths: Paths = DEFAULT
) -> SnfImageParams:
    """`verify parameters`: check the OS parameters, and that a named image exists."""
    for check in checks or list(CHECKS):
        if check not in CHECKS:
            raise ValidationError(f"verify: unknown check {check!r} (known: {', '.join(CHECKS)})")
    params = parse_params(os_settings.params)
    named = params.img_id and not params.is_null_image and not params.config_url
    if named and not params.img_id.startswith(("http://", "https://")):
        conf = settings.load(paths.snf_image_conf)
        sources.resolve(params.img_id, conf.images.dir, _store(paths))
    log.info("OS parameters are valid: %s", params)
    return params


def create(request: osapi.CreateRequest, paths: Paths = DEFAULT) -> None:
    given = parse_params(request.os.params)  # bad parameters are named before anything else
    if given.img_id and not given.is_null_image:
        sources.check_reference(given.img_id)
    conf = settings.load(paths.snf_image_conf)
    params = _params(request.os.params, conf)
    instance = request.instance
    disk = _first_disk(instance)
    if params.img_id is None:
        raise ValidationError("OS parameter img_id: required to create an instance")
    what = "the disk (img_id=null)" if params.is_null_image else f"image {params.img_id}"
    check_os_family(properties(params), what)
    progress = Progress(instance.name, conf.progress.monitor, conf.progress.interval)
    try:
        if not params.is_null_image:
            if params.img_format is None:
                raise ValidationError("OS parameter img_format: required unless img_id=null")
            ref = sources.resolve(params.img_id, conf.images.dir, _store(paths))
            if selected_tasks(properties(params)):  # before the image is fetched, not after
                freshness.check(conf.helper.dir)
            what = f"image {ref.description}"
            progress.info(f"writing {ref.description} ({params.img_format}) onto {disk}")
            Deployment(
                ref,
                params.img_format,
                disk,
                checksum=params.img_checksum.partition(":")[2] if params.img_checksum else None,
                progress=progress,
                scratch_dir=conf.images.scratch_dir,
                max_size=conf.images.max_size,
                timeout=conf.images.download_timeout,
            ).run()
        try:
            personalize(params, instance, disk, conf, progress, what=what)
        except BaseException:
            deploy.wipe_start(disk, "a failed personalization")
            raise
        log.info("%s: %s deployed and personalized", instance.name, what)
    except GanetiExtError as err:
        progress.error(str(err))
        raise
    finally:
        progress.close()


def rename(request: osapi.RenameRequest, paths: Paths = DEFAULT) -> None:
    conf = settings.load(paths.snf_image_conf)
    params = _params(request.os.params, conf, fetch=False)
    instance = request.instance
    progress = Progress(instance.name, conf.progress.monitor, conf.progress.interval)
    try:
        personalize(
            params, instance, _first_disk(instance), conf, progress,
            what=f"instance {request.old_name}", only=RENAME_TASKS,
        )  # fmt: skip
    finally:
        progress.close()
    log.info("instance %s renamed to %s inside its disk", request.old_name, instance.name)


def personalize(
    params: SnfImageParams,
    instance: osapi.InstanceInfo,
    disk: str,
    conf: settings.SnfImageConfig,
    progress: Progress,
    *,
    what: str,
    only: list[str] | None = None,
) -> None:
    """Run the helper VM on `disk`; an error names `what` and the failing task."""
    config = helper_config(params, instance, conf.network, only=only)
    if not config["tasks"]:
        log.info("%s: EXCLUDE_ALL_TASKS, not personalized", what)
        return
    freshness.check(conf.helper.dir)
    kernel, initrd = conf.helper.dir / "vmlinuz", conf.helper.dir / "initrd.img"
    timeout = conf.helper.timeout + conf.helper.timeout_per_gib * path_size(disk) / GIB
    with vm.workdir() as tmp:
        config_file = Path(tmp) / "config.json"
        fd = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(config, out)
        spec = vm.HelperSpec(
            kernel, initrd, disk, config_file, Path(tmp),
            accel=conf.helper.accel, memory_mib=conf.helper.memory,
        )  # fmt: skip
        try:
            vm.run_helper(spec, conf.helper.user, timeout, lambda e: _forward(e, progress))
        except vm.HelperFailed as err:
            raise ValidationError(f"{what}: personalization failed: {err}") from None


def _forward(event: Event, progress: Progress) -> None:
    if event.kind in ("task-start", "task-end"):
        progress.helper(event.kind, event.task)
    elif event.kind in ("warning", "error"):
        progress.helper(event.kind, text=event.text)
    elif event.kind == "info":
        progress.info(event.text)


def _params(osparams, conf: settings.SnfImageConfig, fetch: bool = True) -> SnfImageParams:
    params = parse_params(osparams)
    if params.config_url and fetch:
        fetched = config_url.fetch(
            params.config_url,
            timeout=conf.images.config_url_timeout,
            max_bytes=conf.images.config_url_max_size,
        )
        params = parse_params(config_url.merged(osparams, fetched))
    return params


def _first_disk(instance: osapi.InstanceInfo) -> str:
    if not instance.disks:
        raise ValidationError(f"instance {instance.name} has no disks to hold the image")
    disk = instance.disks[0]
    if not disk.path:
        raise ValidationError(
            f"instance {instance.name}: disk 0 has no local path (userspace-only access); "
            "snf-image needs a block device or file"
        )
    return disk.path


def _store(paths: Paths):
    """The archipelago store of this node, when there is one (images can come from it)."""
    from ganeti_ext.extstorage import settings as store_settings
    from ganeti_ext.extstorage.filestore.store import FileStore

    try:
        conf = store_settings.load(paths.archipelago_conf)
        store = FileStore(conf.store.path)
        store.check()
    except GanetiExtError:
        return None
    return store


def import_disk(request: osapi.TransferRequest) -> None:
    transfer.import_disk(request)


def export_disk(request: osapi.TransferRequest) -> None:
    transfer.export_disk(request)
