"""The one exception type raised for anything wrong on the wire."""


class ProtocolError(Exception):
    """A message could not be decoded or validated; the text says what was wrong."""
