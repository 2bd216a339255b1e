"""Identity: who is calling and what they may do. Accounts and their habilitation, passwords and
the second factor, sessions, login attempts, roles and the one permission check (`security`), the
case rule (`access`), single sign-on (OIDC), the federation door for partners (police nationale),
and the audit trail with its export and signing-key checks. Its routes are in `routes/`."""
