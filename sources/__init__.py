"""dlt sources of sessionsync, one package per API, sharing the HTTP layer in `sources.http`."""
