"""fleetforge's errors. They subclass pyinfra's ``PyinfraError`` so that, raised from a deploy
file, pyinfra's CLI prints them as one line (``--> pyinfra error: host h: key: expected ...``)
instead of a traceback."""

from pyinfra.api.exceptions import PyinfraError


class FleetforgeError(PyinfraError, ValueError):
    """Base of fleetforge's expected errors; ``str()`` is the message for a person."""


class PlanError(FleetforgeError):
    """Host data that contradicts the detected hardware (one line: host, key, expected)."""

    def __init__(self, host: str, key: str, message: str):
        self.host, self.key = host, key
        super().__init__(f"host {host}: {key}: {message}")
