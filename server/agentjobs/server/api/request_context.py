"""The request id of the RPC or HTTP request being served, for every log line."""

from __future__ import annotations

import logging
import uuid
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

REQUEST_ID_KEY = "x-request-id"
MAX_REQUEST_ID = 128


def new_request_id(given: str | None) -> str:
    """Keep a caller's id when it is printable and short; otherwise make one."""
    if given and len(given) <= MAX_REQUEST_ID and given.isprintable():
        return given
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class MasumiHashLogFilter(logging.Filter):
    """The masumi SDK's hash helpers log the hashed input and the agent's whole result
    through the root logger: customer data that has no place in our logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "root" and record.pathname.endswith(_MASUMI_HELPERS))


_MASUMI_HELPERS = ("masumi/helper_functions.py", "masumi\\helper_functions.py")


def route_masumi_loggers() -> None:
    """The SDK gives each of its loggers a private coloured handler and stops propagation;
    route them through ours instead (one format, request ids), and drop its validation
    errors: a caller's bad input is answered to the caller, not an error of ours."""
    import masumi.payment
    import masumi.validation  # noqa: F401  (imported for their loggers)

    for name in list(logging.root.manager.loggerDict):
        if name == "masumi" or name.startswith("masumi."):
            sdk_logger = logging.getLogger(name)
            sdk_logger.handlers.clear()
            sdk_logger.propagate = True
            sdk_logger.setLevel(logging.NOTSET)
    logging.getLogger("masumi.validation").setLevel(logging.CRITICAL)


def configure_logging(level: str) -> None:
    route_masumi_loggers()
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.addFilter(MasumiHashLogFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Alembic narrates every start-up at INFO; the migrator logs the one line that
    # matters (which revision the schema moves to).
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
