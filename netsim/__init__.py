"""The network emulator: channel models, the medium process, link statistics."""
