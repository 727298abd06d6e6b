"""The SQL of the repository, as synchronous functions of one open transaction
(SQLAlchemy Core), shared by every store through the drivers."""
