"""Training recipe for edgecv's compact detectors (needs the optional ``train`` extra: torch).

Nothing here is imported by the agent at run time.
"""
