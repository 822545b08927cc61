"""Personalization tasks, run inside the helper VM (standard library only).

The helper boots from an initramfs holding this package; the host never imports it while
handling a guest. One module per task (NAME, INPUTS: the configuration keys it reads,
and run(ctx)), in the order upstream snf-image ran them. The host decides which run
(image properties EXCLUDE_ALL_TASKS / EXCLUDE_TASK_<Name>).
"""

ORDER = (
    "FixPartitionTable",
    "FilesystemResizeUnmounted",
    "MountImage",
    "InitializeDatasource",
    "FilesystemResizeMounted",
    "AddSwap",
    "AssignHostname",
    "ChangeMachineId",
    "ChangePassword",
    "ConfigureNetwork",
    "DeleteSSHKeys",
    "SELinuxAutorelabel",
    "EnforcePersonality",
    "UmountImage",
)
# Mounting and unmounting are never excluded: every other task needs them.
ALWAYS = ("MountImage", "UmountImage")

MODULES = {
    "FixPartitionTable": "fix_partition_table",
    "FilesystemResizeUnmounted": "filesystem_resize_unmounted",
    "MountImage": "mount_image",
    "InitializeDatasource": "initialize_datasource",
    "FilesystemResizeMounted": "filesystem_resize_mounted",
    "AddSwap": "add_swap",
    "AssignHostname": "assign_hostname",
    "ChangeMachineId": "change_machine_id",
    "ChangePassword": "change_password",
    "ConfigureNetwork": "configure_network",
    "DeleteSSHKeys": "delete_ssh_keys",
    "SELinuxAutorelabel": "selinux_autorelabel",
    "EnforcePersonality": "enforce_personality",
    "UmountImage": "umount_image",
}


def load(name: str):
    """The module of task `name`."""
    import importlib

    return importlib.import_module(f"{__name__}.{MODULES[name]}")
