"""llm-content-filter: the content filter between AI coding agents and LLM providers."""

__version__ = "0.1.0"
