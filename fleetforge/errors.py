"""fleetforge's errors. They subclass pyinfra's ``PyinfraError`` so that, raised from a deploy
file, pyinfra's CLI prints them as one line (``--> pyinfra error: host h: key: expected ...``)
instead of a traceback."""

from pyinfra.api.exceptions import PyinfraError


class FleetforgeError(PyinfraError, ValueError):
    """Base of fleetforge's expected errors; ``str()`` is the message for a person."""
