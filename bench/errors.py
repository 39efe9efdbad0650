class BenchError(Exception):
    """A user-facing problem (bad input, bad config) reported as one clear line, no traceback."""
