"""The helper VM, host side: its image (kernel + initramfs), its configuration, running it
under qemu, and reading what it says on its serial line as hostile input."""
