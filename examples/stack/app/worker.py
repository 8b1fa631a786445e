"""The worker: takes jobs from redis' `jobs` list and counts them in `done`."""
import os

import redis

# A blocking pop waits up to BLOCK seconds for a job, and the socket must
# wait longer than that: redis-py (8.x) gives every socket a 5 s timeout by
# default, so a 5 s pop on an idle queue would end in TimeoutError (and a
# respawn) instead of an empty answer.
BLOCK = 5
store = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=BLOCK + 10)
print("worker ready", flush=True)
while True:
    item = store.blpop(["jobs"], timeout=BLOCK)
    if item is None:
        continue
    _, job = item
    done = store.incr("done")
    print(f"worker did job {job.decode()} ({done} done)", flush=True)
