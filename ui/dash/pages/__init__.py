"""One module per dashboard page; each has ``PATH``, ``TITLE``, ``layout(source)`` and ``register(app, source)``."""
