"""The lab guest's initramfs takes only the virtio drivers its kernel has as modules."""

from __future__ import annotations

from labkit import guest


def test_built_in_modules_are_read_from_modules_builtin(tmp_path):
    kernel = tmp_path / "6.12.57+deb13-cloud-amd64" / "kernel"
    kernel.mkdir(parents=True)
    (kernel.parent / "modules.builtin").write_text(
        "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\n"
    )
    builtin = guest.builtin_modules(kernel)
    assert {"drivers/virtio/virtio.ko", "drivers/virtio/virtio_ring.ko"} <= builtin
    assert "drivers/net/virtio_net.ko" not in builtin


def test_a_kernel_without_the_listing_has_nothing_built_in(tmp_path):
    assert guest.builtin_modules(tmp_path / "kernel") == set()
