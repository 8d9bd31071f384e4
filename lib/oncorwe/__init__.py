"""oncorwe: a reproducible research platform for oncology real-world evidence."""

__version__ = "0.1.0"
