"""Look inside a pickle without running it: which globals would unpickling import?

Used only to explain *why* ``torch.load(weights_only=True)`` refused a file: a pickled
``nn.Module`` (needs ``--trust-checkpoint``) versus a pickle that would call something like
``os.system`` (refused outright) versus bytes that are not a pickle at all.
"""

from __future__ import annotations

import _compat_pickle
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
    return list(dict.fromkeys(_python3_name(g) for g in found))


def _python3_name(name: str) -> str:
    """Protocol-2 pickles spell builtins as Python 2 did; the unpickler maps them back."""
    module, _, attr = name.rpartition(".")
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{attr}"


def looks_like_module(globals_: list[str]) -> bool:
    """Whether the referenced globals are those of a pickled ``nn.Module``."""
    return any(g.startswith(_MODULE_PREFIXES) for g in globals_)


# What weights-only loading allows when torch cannot tell us (tensors, storages, containers).
_SAFE_PREFIXES = ("torch._utils._rebuild_", "torch._tensor._rebuild_", "torch.storage.")
_SAFE_NAMES = {"collections.OrderedDict", "collections.Counter", "torch.Size", "torch.device",
               "torch.Tensor", "_codecs.encode", "builtins.set", "builtins.frozenset",
               "builtins.bytearray", "builtins.complex", "torch.serialization._get_layout"}
# Modules whose every global can run code or reach the system (never part of a model).
_DANGEROUS_MODULES = {"os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "pty",
                      "importlib", "runpy", "ctypes", "code", "codeop", "pickle", "marshal",
                      "webbrowser", "multiprocessing", "signal", "tempfile", "io", "pathlib"}
_DANGEROUS_BUILTINS = {"eval", "exec", "compile", "open", "getattr", "setattr", "delattr",
                       "__import__", "globals", "locals", "vars", "input", "breakpoint"}


def _allowed() -> set[str]:
    """The globals ``torch.load(weights_only=True)`` accepts, by ``module.name``."""
    names = set(_SAFE_NAMES)
    try:  # torch's own list (private, so only where this torch has it)
        from torch._weights_only_unpickler import _get_allowed_globals

        names.update(_get_allowed_globals())
    except Exception:  # pragma: no cover - other torch versions
        pass
    return names


def _is_safe(name: str, allowed: set[str]) -> bool:
    if name in allowed or name.startswith(_SAFE_PREFIXES):
        return True
    module, _, attr = name.rpartition(".")
    return module == "torch" and (attr.endswith("Storage") or attr in _TORCH_DTYPES)


_TORCH_DTYPES = {"float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64",
                 "uint8", "bool", "complex64", "complex128", "half", "float", "double", "long",
                 "int", "short"}


def _dangerous(name: str) -> bool:
    """A global that calls into the system or the interpreter, whatever else the pickle holds:
    anything from os/subprocess/..., a code-running builtin, or a plain function (lower-case
    name: a class, as a pickled model's own classes are, is capitalised)."""
    module, _, attr = name.rpartition(".")
    top = module.split(".")[0]
    if top in _DANGEROUS_MODULES or (top == "builtins" and attr in _DANGEROUS_BUILTINS):
        return True
    return not attr[:1].isupper()


def offending_globals(globals_: list[str]) -> tuple[list[str], list[str]]:
    """``(module, unsafe)``: the globals of a pickled model (torch.nn/jit classes and, beside
    them, its own classes) and those that weights-only loading refuses for running code. The
    allowed ones (tensor rebuilds, storages, OrderedDict, dtypes) are in neither list."""
    allowed = _allowed()
    rest = [g for g in globals_ if not _is_safe(g, allowed)]
    if not looks_like_module(rest):
        return [], rest
    module = [g for g in rest if g.startswith(("torch.", "__torch__.")) or not _dangerous(g)]
    return module, [g for g in rest if g not in module]
