"""What the gateway and the stage services share: the request context, the components'
interfaces and knobs, the column catalog, the stage protocol and its wire, the budget.

Stage implementations live in their services (``services/<stage>/``); the gateway's runner
and its declaration live in ``services/gateway/``.
"""
