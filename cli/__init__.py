"""The click commands of landscape (installed as ``landscape_cli``)."""
