"""Typed views of the environments Ganeti hands to OS scripts, ExtStorage providers,
hooks and NIC scripts. Each parser is a pure function of a Mapping[str, str]."""
