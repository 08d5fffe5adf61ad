"""redis-py's Lua helpers against a server: Script objects (EVALSHA, NOSCRIPT, EVAL again)
and Lock (acquire, extend, reacquire, release, all Lua scripts) under contention.

    python3 redis_py_scripts.py PORT [CA_FILE]   (a CA file means TLS)
"""
import sys
import threading

import redis


def client(port, ca):
    if ca:
        return redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=ca, ssl_check_hostname=False)
    return redis.Redis(host="127.0.0.1", port=port)


def main():
    port = int(sys.argv[1])
    ca = sys.argv[2] if len(sys.argv) > 2 else None
    r = client(port, ca)
    r.delete("py:count", "py:guarded", "py:lock")

    incr = r.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
    assert incr(keys=["py:count"], args=[5]) == 5
    r.script_flush()
    # The script is gone: redis-py gets NOSCRIPT and sends it again with EVAL.
    assert incr(keys=["py:count"], args=[1]) == 6
    assert r.script_exists(incr.sha) == [True]

    def worker():
        c = client(port, ca)
        for _ in range(40):
            with c.lock("py:lock", timeout=10, blocking_timeout=20):
                value = int(c.get("py:guarded") or 0)
                c.set("py:guarded", value + 1)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert int(r.get("py:guarded")) == 160, r.get("py:guarded")

    lock = r.lock("py:lock", timeout=5)
    assert lock.acquire(blocking=False)
    assert lock.owned()
    assert lock.extend(10)
    assert r.pttl("py:lock") > 10000
    assert lock.reacquire()
    other = r.lock("py:lock", timeout=5)
    assert not other.acquire(blocking=False)
    lock.release()
    assert not lock.owned()
    try:
        lock.release()
        raise AssertionError("a released lock released again")
    except redis.exceptions.LockError:
        pass
    print("ok")


main()
