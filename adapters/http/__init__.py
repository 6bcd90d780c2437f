"""HTTP adapter: aiohttp glue between HTTP and the transport-neutral API layer."""
