"""OS definitions (Ganeti OS API 20); the first one is snf-image."""
