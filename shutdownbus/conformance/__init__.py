"""A conformance kit for the shutdownbus protocol: test vectors as data, and a runner.

* ``python -m shutdownbus.conformance.vectors``: the test vectors of protocol
  version 1 as JSON, generated from the reference implementation (the
  repository keeps them in ``tests/vectors/protocol-v1.json``).
* ``python -m shutdownbus.conformance -- CMD ARGS``: plays the parent to the
  member program ``CMD ARGS`` (in any language), case by case, and prints a
  table; see docs/conformance.md for the contract the program follows.
"""
