"""One module per command; ``COMMANDS`` lists them for the group in ``main.py``."""

from .inspect import inspect
from .show import plot, show

COMMANDS = [inspect, show, plot]
