"""The experiments: one module per topic, each returning plain, typed records.

They run work on the executors below them (``pool``, ``servers``, the standard
library's pools) and never draw: the ``view`` layer plots what they return.
"""
