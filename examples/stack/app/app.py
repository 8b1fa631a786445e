"""A tiny WSGI app: counts visits in redis and queues a job for the worker."""
import os

import redis

store = redis.Redis.from_url(os.environ["REDIS_URL"])
GREETING = os.environ.get("GREETING", "hello")


def application(environ, start_response):
    visits = store.incr("visits")
    store.rpush("jobs", visits)
    done = int(store.get("done") or 0)
    body = f"{GREETING}; visits={visits}; done={done}; pid={os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
