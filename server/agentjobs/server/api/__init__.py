"""Transports: gRPC servicers, the MIP-003 HTTP front, error mapping, interceptors."""
