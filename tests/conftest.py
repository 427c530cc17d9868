"""Hypothesis profiles: ``dev`` (quick, the default) and ``ci`` (>= 200 examples per property).

The profile comes from HYPOTHESIS_PROFILE, else ``ci`` when the CI variable is set, else ``dev``.
"""

import os

import torch
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

torch.set_num_threads(1)  # xdist runs one worker per core
