"""Keys service: accounts, API keys, authentication and the key change feed."""
