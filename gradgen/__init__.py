"""gradgen: gradient mechanisms for Arbor, generated from NMODL."""

__version__ = "0.1.0"
