"""HTTP API (FastAPI) under /v1; OpenAPI at /docs. Translates requests into payment use cases."""
