"""Casework: requisitions, citizens' requests, the kiosk and the register, which all go through the
requisition service. `client` is what their routes share with it; `forms` reads their uploads."""
