"""The error every data problem raises: its message names the file and what is wrong."""


class PH2Error(ValueError):
    """Missing or bad PH2 data; the message names the offending path and what is wrong."""


class FolderError(PH2Error):
    """A bad image/mask folder; the message names the offending file and what is wrong."""


class SomeFilesFailed(ValueError):
    """Some input files could not be used; every other one was processed and written. The
    command line lists them (``lines``: one per file, its reason and what to do) and exits 1
    (2 is for errors that stop a command before it does anything)."""

    exit_code = 1

    def __init__(self, what: str, bad: list[str], total: int):
        self.bad, self.total = bad, total
        head = f"{len(bad)} of {total} {what} (nothing written for them):"
        super().__init__("\n".join([head, *(f"  {b}" for b in bad)]))
