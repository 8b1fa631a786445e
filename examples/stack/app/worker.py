"""The worker: takes jobs from redis' `jobs` list and counts them in `done`."""
import os

import redis

store = redis.Redis.from_url(os.environ["REDIS_URL"])
print("worker ready", flush=True)
while True:
    # Waits at most 5 s at a time: redis-py's socket timeout is shorter
    # than "forever".
    item = store.blpop(["jobs"], timeout=5)
    if item is None:
        continue
    _, job = item
    done = store.incr("done")
    print(f"worker did job {job.decode()} ({done} done)", flush=True)
