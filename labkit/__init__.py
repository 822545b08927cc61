"""The ganeti-ext lab: a real Ganeti 3.0 cluster in network namespaces, for the demo and tests."""
