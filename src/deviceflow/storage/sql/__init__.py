"""SQL storage on SQLAlchemy 2 Core: SQLite (aiosqlite) and PostgreSQL (asyncpg).

``engine`` opens stores and runs the packaged migrations; ``repository`` (the store) and one module
per port implement the ports of
``storage.interface``; ``tables`` is the schema. Importing this package imports none of them.
"""
