"""Look inside a pickle without running it: which globals would unpickling import?

Used only to explain *why* ``torch.load(weights_only=True)`` refused a file: a pickled
``nn.Module`` (needs ``--trust-checkpoint``) versus a pickle that would call something like
``os.system`` (refused outright) versus bytes that are not a pickle at all.
"""

from __future__ import annotations

import io
import pickletools
import zipfile

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "SHORT_BINSTRING",
               "BINSTRING", "STRING"}
# Globals that belong to a pickled model rather than to plain tensors and containers.
_MODULE_PREFIXES = ("torch.nn.modules.", "torch.nn.parameter.", "torch.jit.")


def _pickle_bytes(path: str) -> bytes:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("data.pkl")]
            return archive.read(names[0]) if names else b""
    with open(path, "rb") as handle:
        return handle.read()


def pickle_globals(path: str) -> list[str] | None:
    """Every ``module.name`` global the pickle(s) in ``path`` reference, in order of first use.

    Returns ``None`` when the file holds no readable pickle. Nothing is imported or executed:
    the opcodes are only disassembled.
    """
    try:
        stream = io.BytesIO(_pickle_bytes(path))
    except (OSError, zipfile.BadZipFile, KeyError):
        return None
    found: list[str] = []
    read_any = False
    while stream.tell() < len(stream.getbuffer()):
        strings: list[str] = []
        try:
            for opcode, arg, _ in pickletools.genops(stream):
                read_any = True
                if opcode.name in _STRING_OPS and isinstance(arg, str):
                    strings.append(arg)
                elif opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
                    found.append(arg.replace(" ", ".", 1))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
        except Exception:  # not (or no longer) a pickle: keep what was read so far
            break
    if not read_any:
        return None
    return list(dict.fromkeys(found))


def looks_like_module(globals_: list[str]) -> bool:
    """Whether the referenced globals are those of a pickled ``nn.Module``."""
    return any(g.startswith(_MODULE_PREFIXES) for g in globals_)
