"""The stages: the only code that knows ``params.yaml`` and the data folders.

``params`` (pydantic sections, data only) and one module per stage (``hypothesis``,
``validation``, ``report``); the library below them never reads a parameter file.
"""
