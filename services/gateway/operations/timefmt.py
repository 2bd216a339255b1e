"""To be deleted: only three route modules still import these names from here, pending their move
(issue 28 item 1). Everything else imports services.common.timefmt (paris_day_bounds) and
services.gateway.timerange (checked_us) itself; so must they: routes/bollards.py, routes/journal.py
and routes/requisitions.py."""

from services.common.timefmt import paris_day_bounds as paris_day_bounds
from services.gateway.timerange import checked_us as checked_us
