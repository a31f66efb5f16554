"""The HTTP routes of the service, one module per concern; `serving.app.ROUTE_HANDLERS` lists their routers."""
