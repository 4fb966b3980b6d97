"""Token usage read from provider responses (for charging budgets after the response)."""

from filter.usage.model import Usage
from filter.usage.parser import MAX_ITEM_BYTES, UsageParser

__all__ = ["MAX_ITEM_BYTES", "Usage", "UsageParser"]
