"""ganeti-ext: the node layer of a Synnefo-style cloud on top of Ganeti 3.0."""

__version__ = "0.1.0"
