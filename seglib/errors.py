"""The error every data problem raises: its message names the file and what is wrong."""


class PH2Error(ValueError):
    """Missing or bad PH2 data; the message names the offending path and what is wrong."""


class FolderError(PH2Error):
    """A bad image/mask folder; the message names the offending file and what is wrong."""
