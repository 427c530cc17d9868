from impl.model import *  # noqa: F403 (the course harness imports Miniproject_2.model; this is impl.model)
