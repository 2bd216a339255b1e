"""The supervision room's operations, behind the gateway: the viewing-room register (declared to the
prefecture by mail), pedestrian-zone bollards, the alarm list, the shift journal (main courante),
the compliance report, and the console notifications that carry intercom calls and alarms.

One module per topic; each reads and writes only its own `gateway_*` tables (operations.models)
and reaches other services through gRPC or JetStream like the rest of the gateway.
"""
