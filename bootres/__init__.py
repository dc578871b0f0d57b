"""bootres: keep a host able to resolve names and reach its router from the first second of boot."""

__version__ = "0.1.0"
