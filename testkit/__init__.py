"""Real parts the tests and the bench both start, only on 127.0.0.1: the Cartesia loopback
server, the GCS emulator, PostgreSQL and PgBouncer from Debian's packages, server processes,
and throwaway project folders. Nothing here is imported by the package."""
