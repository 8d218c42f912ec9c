"""Settings an admin changes in the browser, over the environment's defaults.

The environment (`mailer.config`) stays the one source of defaults and of everything the
admin may not change. `store` keeps the admin's values (typed and validated by `schema`, with
an append-only history of who changed what); `store.effective(session, base)` lays them over
the environment's `Settings`. `dkim_keys` generates DKIM keys and keeps them sealed (`sealing`).
"""
