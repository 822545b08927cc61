"""snf-events: the reference consumer of the update path (the cloud layer's side).

messages.py decodes and validates what arrives, state.py applies it to a small sqlite
database the way a Synnefo-style backend does, topology.py declares the queues, and
reconcile.py compares that database with Ganeti over RAPI. cli.py wires them together.
"""
