"""Triggers service: rules on stream values, webhook notifications, the triggers log."""
