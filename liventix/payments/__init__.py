"""Payments: `gateways` (the provider behind one interface, a service) and `flows`
(checkout, refund and settlement: transactions paired with gateway calls).

Kept empty so that importing the gateway interface does not import the database
layer the flows use.
"""
