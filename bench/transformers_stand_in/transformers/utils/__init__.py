"""transformers.utils names that peft imports (never called by the peer)."""


class PushToHubMixin:
    pass


def cached_file(*_a, **_k):
    raise RuntimeError("transformers stand-in: cached_file is not available")
