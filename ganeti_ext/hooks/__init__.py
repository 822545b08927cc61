"""Ganeti hooks of the update path (one dispatcher, installed for every hook path)."""
