"""The bundle format.

``model.json`` (the manifest and its schema) and the input sample it records. Reading it is
``loading``'s; writing it is ``publishing``'s.
"""
