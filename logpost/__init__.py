"""logpost: postmortems for LLM fine-tuning logs."""

__version__ = "0.1.0"
