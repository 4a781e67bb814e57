"""The click commands of landscape (installed as ``landscape_cli``)."""

from . import interrupt

interrupt.at_start()  # run as `landscape`: Ctrl-C during the first imports gives one line too
