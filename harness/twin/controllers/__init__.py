"""Controllers of a well-built G7 deployment, one module each, all ticking on the twin's asyncio loop."""
