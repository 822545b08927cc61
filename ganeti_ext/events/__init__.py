"""Pure logic of the update path: job files, status changes, messages and their schemas."""
