"""The ``n2n`` command (layer 4): parses flags, maps the library's errors to flag names and wires
the layers below it: the blocks (:mod:`impl`), the application (:mod:`impl.app`) and the
comparison tools (:mod:`harness`)."""
