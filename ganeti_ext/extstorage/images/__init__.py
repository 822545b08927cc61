"""Image import: sources (files, URLs), formats (raw, qcow2, compressed), decoding."""
