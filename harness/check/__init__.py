"""``n2n check``: the checker (engine, diagnoses, reports) and the child process that runs the
target's code (worker, adapter), talking through length-prefixed frames (protocol)."""
