"""The "archipelago" ExtStorage provider: volumes as sparse files in a shared store."""
