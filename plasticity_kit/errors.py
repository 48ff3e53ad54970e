"""Errors a user sees: each names where the problem is and what was expected."""


_LINE_BREAKS = {c: repr(chr(c))[1:-1] for c in (*range(0x20), 0x7F, 0x85, 0x2028, 0x2029)}


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped (``\\n``, ``\\x00``), so that
    an error naming a user's key or value stays one line."""
    return str(text).translate(_LINE_BREAKS)


class PlasticityKitError(Exception):
    """Base class of every error plasticity-kit raises on purpose."""


class SpecError(PlasticityKitError):
    """A spec value is wrong.

    ``key`` is the dotted key path inside the spec (``model.rule.params.memory_factor``),
    ``source`` the file it came from (set by the loader once known).  ``str()`` gives
    ``source: key: message``.
    """

    def __init__(self, key: str, message: str, source: str | None = None):
        self.key = key
        self.message = message
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [p for p in (self.source, self.key) if p]
        return one_line(": ".join(parts + [self.message]))

    def with_source(self, source: str) -> "SpecError":
        return SpecError(self.key, self.message, source)

    def with_prefix(self, prefix: str) -> "SpecError":
        key = f"{prefix}.{self.key}" if self.key else prefix
        return SpecError(key, self.message, self.source)


class PluginError(PlasticityKitError):
    """A plugin is broken or two plugins claim the same name."""


class DataError(PlasticityKitError):
    """A data set cannot be found, read or selected as asked."""


class DivergedError(PlasticityKitError):
    """The state of a run stopped being finite (NaN/inf) or overflowed."""


class RunFileError(PlasticityKitError):
    """The run file could not be written (disk full, file-size limit, I/O error, a value its
    ``record.dtype`` cannot hold): the run stopped and its file is marked ``failed``, readable up
    to its last good frame and resumable from its last checkpoint.  ``plasticity-kit run`` exits 3."""

    resumable = True  # False: resuming would meet the same error

    @classmethod
    def unresumable(cls, message: str) -> "RunFileError":
        error = cls(message)
        error.resumable = False
        return error
