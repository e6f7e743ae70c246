"""The microblog's locust kit: accounts, the ledger of writes, thresholds and the verdict."""
