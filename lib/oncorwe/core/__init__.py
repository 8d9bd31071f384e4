"""The ground floor: what every layer uses and that imports nothing else of oncorwe.

``paths`` (the project root), ``io`` (atomic writes, JSON), ``errors`` (user errors and
strict YAML), ``privacy`` (the one small-cell policy and the identifier scan), ``rules``
(the subgroup condition language) and ``roles`` (which column of a user's table plays
which part).
"""
