"""Payments: the PaymentGateway protocol (gateway.py), the gateway to a Masumi payment
service (masumi.py) and the sandbox payment service that stands in for one (sandbox/)."""
