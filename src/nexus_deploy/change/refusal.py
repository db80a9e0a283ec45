"""How the change layer stops a deployment: a refusal whose message says why and what to do.

A leaf, so that judging a precheck does not load the activation stack to recognise one.
"""

from __future__ import annotations


class Refused(Exception):
    """The deployment stops here; the message says why and what to do."""
