"""The worker fleet: every worker process registers and heartbeats in SQL (the
``workers`` table), so the API can list them and the reaper knows which worker holds which
job's message."""
