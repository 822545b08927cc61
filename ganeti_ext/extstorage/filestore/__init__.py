"""The file store: content-addressed blocks and reflinked volumes on XFS or btrfs."""
