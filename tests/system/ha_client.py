#!/usr/bin/python3
"""ha_client.py -- the clients of tests/system/test_ha.sh.

Every subcommand talks HTTPS to signalbox (through HAProxy or to one
replica) with the admin client certificate of the shared PKI, writes what
it saw to JSON-lines files, and stops by itself: when the file named by
--stop appears, or at --deadline seconds, whichever is first.

  load    writers that create Leases in one namespace; every create that was
          acknowledged (201) is recorded with its resourceVersion; a create
          whose outcome is unknown (connection error, 5xx, 429) is retried
          under the same name, and a 409 on such a retry is resolved by a GET
  watch   one watch of that namespace, resumed from its last resourceVersion
          on every disconnect; every event is recorded in arrival order
  probe   `kubectl get ns` every 0.5 s; start, end, exit code, error (and,
          for diagnosis, the same read on each replica directly)
  mesh    enrolments with a setup key, several at once, each on its own
          connection (so HAProxy spreads them); peers and addresses recorded
  snapshot  every peer's address now (to check later that none moved)
  sessions  HAProxy's sessions of a frontend (port -> server), from its
          stats socket
  verify  the final checks: no acknowledged write lost (through each given
          endpoint), each watch saw every event once and in order, kubectl's
          longest outage, the mesh's addresses distinct, never two leaders

Only loopback addresses are used (the test passes them).
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

import requests
import urllib3

urllib3.disable_warnings()

LEASES = "/apis/coordination.k8s.io/v1/namespaces/%s/leases"
ENROLL = "/apis/mesh.signalbox.dev/v1alpha1/enrollments"
PEERS = "/apis/mesh.signalbox.dev/v1alpha1/namespaces/%s/peers"

RETRYABLE = (429, 500, 502, 503, 504)


def now():
    return time.time()


class Stopper:
    def __init__(self, path, deadline):
        self.path = path
        self.end = now() + deadline

    def stopped(self):
        return now() >= self.end or (self.path and os.path.exists(self.path))


def session(args):
    s = requests.Session()
    # not the environment's CA bundle or proxies: loopback, our own CA
    s.trust_env = False
    s.verify = args.ca
    s.cert = (args.cert, args.key)
    return s


class JsonLines:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, obj):
        with self.lock:
            self.f.write(json.dumps(obj, sort_keys=True) + "\n")
            self.f.flush()


# --- load ---------------------------------------------------------------------


def cmd_load(args):
    out = JsonLines(args.out)
    stop = Stopper(args.stop, args.deadline)
    stats = {"acked": 0, "confirmed": 0, "conn_errors": 0, "http_retryable": 0,
             "other_errors": 0, "unresolved": 0}
    lock = threading.Lock()

    def count(k, n=1):
        with lock:
            stats[k] += n

    def writer(tid):
        s = session(args)
        base = args.url + LEASES % args.namespace
        seq = 0
        while not stop.stopped():
            seq += 1
            name = "w%d-%06d" % (tid, seq)
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name, "namespace": args.namespace},
                    "spec": {"holderIdentity": name}}
            unknown = False  # an earlier attempt may have been committed
            t_first = now()
            while True:
                t0 = now()
                try:
                    r = s.post(base, json=body, timeout=(2, 10))
                except requests.RequestException as e:
                    count("conn_errors")
                    unknown = True
                    out.write({"event": "error", "tid": tid, "name": name,
                               "t": t0, "error": type(e).__name__})
                    s.close()
                    s = session(args)
                    if stop.stopped() and now() > t_first + 30:
                        out.write({"event": "unresolved", "tid": tid,
                                   "name": name, "t": now()})
                        count("unresolved")
                        break
                    time.sleep(0.1)
                    continue
                if r.status_code == 201:
                    rv = int(r.json()["metadata"]["resourceVersion"])
                    count("acked")
                    out.write({"event": "ack", "tid": tid, "seq": seq,
                               "name": name, "rv": rv, "t": now(),
                               "t_first": t_first, "retried": unknown})
                    break
                if r.status_code in RETRYABLE:
                    count("http_retryable")
                    unknown = True
                    out.write({"event": "error", "tid": tid, "name": name,
                               "t": t0, "error": "HTTP %d" % r.status_code,
                               "body": r.text[:300]})
                    if stop.stopped() and now() > t_first + 30:
                        out.write({"event": "unresolved", "tid": tid,
                                   "name": name, "t": now()})
                        count("unresolved")
                        break
                    time.sleep(0.1)
                    continue
                if r.status_code == 409 and unknown:
                    # the earlier attempt was committed: learn its revision
                    g = None
                    try:
                        g = s.get(base + "/" + name, timeout=(2, 10))
                    except requests.RequestException:
                        pass
                    if g is not None and g.status_code == 200:
                        rv = int(g.json()["metadata"]["resourceVersion"])
                        count("confirmed")
                        out.write({"event": "confirmed", "tid": tid,
                                   "seq": seq, "name": name, "rv": rv,
                                   "t": now(), "t_first": t_first})
                        break
                    time.sleep(0.1)
                    continue
                count("other_errors")
                out.write({"event": "fatal", "tid": tid, "name": name,
                           "t": t0, "status": r.status_code,
                           "body": r.text[:500]})
                break
            time.sleep(args.pause)

    threads = [threading.Thread(target=writer, args=(i,), daemon=True)
               for i in range(args.writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.write({"event": "stats", **stats})
    print("load: %s" % json.dumps(stats, sort_keys=True))
    return 0


# --- watch --------------------------------------------------------------------


def cmd_watch(args):
    out = JsonLines(args.out)
    stop = Stopper(args.stop, args.deadline)
    last_rv = args.rv
    reconnects = 0
    s = session(args)
    url = args.url + LEASES % args.namespace
    target = None
    while True:
        if stop.stopped():
            # after the load: go on until the last write's revision was seen
            if target is None and args.target and os.path.exists(args.target):
                try:
                    target = int(open(args.target).read().strip() or 0)
                except ValueError:
                    target = 0
            if now() >= stop.end or (target is not None and last_rv >= target):
                break
        params = {"watch": "true", "resourceVersion": str(last_rv),
                  "allowWatchBookmarks": "true", "timeoutSeconds": "300"}
        t0 = now()
        try:
            with s.get(url, params=params, stream=True, timeout=(2, 10)) as r:
                if r.status_code != 200:
                    out.write({"event": "http", "status": r.status_code,
                               "t": t0, "body": r.text[:300], "from": last_rv})
                    time.sleep(0.2)
                    reconnects += 1
                    continue
                port = None
                try:
                    port = r.raw._connection.sock.getsockname()[1]
                except Exception:
                    pass
                out.write({"event": "open", "t": t0, "from": last_rv,
                           "port": port})
                reopen = False
                for line in r.iter_lines(chunk_size=None):
                    if args.reopen and os.path.exists(args.reopen):
                        # asked to move: a voluntary resume on a new connection
                        os.unlink(args.reopen)
                        reopen = True
                        break
                    if not line:
                        continue
                    ev = json.loads(line)
                    typ = ev.get("type")
                    obj = ev.get("object") or {}
                    md = obj.get("metadata") or {}
                    rec = {"event": "ev", "type": typ, "t": now()}
                    if typ == "ERROR":
                        rec["status"] = obj
                        out.write(rec)
                        break
                    rv = int(md.get("resourceVersion") or 0)
                    rec["rv"] = rv
                    if typ != "BOOKMARK":
                        rec["name"] = md.get("name")
                    out.write(rec)
                    if rv > last_rv:
                        last_rv = rv
                    if stop.stopped():
                        if target is None and args.target and os.path.exists(args.target):
                            try:
                                target = int(open(args.target).read().strip() or 0)
                            except ValueError:
                                target = 0
                        if now() >= stop.end or (target is not None and last_rv >= target):
                            break
            if reopen:
                out.write({"event": "reopen", "t": now(), "at": last_rv})
                s.close()
                s = session(args)
                continue
        except (requests.RequestException, ValueError) as e:
            # read timeouts (10 s of silence) count too: the stream is resumed
            msg = str(e)
            out.write({"event": "broken", "t": now(), "error": type(e).__name__,
                       "timeout": "timed out" in msg or isinstance(e, requests.Timeout),
                       "msg": msg[:200], "at": last_rv})
            s.close()
            s = session(args)
            reconnects += 1
            time.sleep(0.1)
            continue
        out.write({"event": "closed", "t": now(), "at": last_rv})
        reconnects += 1
    out.write({"event": "end", "t": now(), "last_rv": last_rv,
               "reconnects": reconnects})
    return 0


# --- probe --------------------------------------------------------------------


def cmd_probe(args):
    out = JsonLines(args.out)
    stop = Stopper(args.stop, args.deadline)
    env = dict(os.environ, KUBECONFIG=args.kubeconfig)
    while not stop.stopped():
        t0 = now()
        try:
            p = subprocess.run(["kubectl", "get", "ns", "--request-timeout=5s",
                                "-v=9", "-o", "name"], env=env,
                               capture_output=True, text=True, timeout=15)
            rc, err = p.returncode, p.stderr.strip()[-300:]
            if rc:
                err = p.stderr.strip()[-4000:]
            ok = rc == 0 and "namespace/default" in p.stdout
        except subprocess.TimeoutExpired:
            rc, err, ok = -1, "timeout (15 s)", False
        t1 = now()
        rec = {"t0": t0, "t1": t1, "rc": rc, "ok": ok, "err": err}
        # the same read on each replica directly, on a new connection
        for label, url in args.direct or []:
            d0 = now()
            try:
                with session(args) as s:
                    r = s.get(url + "/api/v1/namespaces", timeout=(2, 5))
                    res = r.status_code
            except requests.RequestException as e:
                res = type(e).__name__
            rec["direct " + label] = [res, round(now() - d0, 3)]
        out.write(rec)
        time.sleep(max(0, 0.5 - (now() - t0)))
    return 0


# --- mesh ---------------------------------------------------------------------


def wg_keypair():
    priv = subprocess.run(["wg", "genkey"], capture_output=True, text=True,
                          check=True).stdout.strip()
    pub = subprocess.run(["wg", "pubkey"], input=priv + "\n",
                         capture_output=True, text=True,
                         check=True).stdout.strip()
    return pub


def cmd_mesh(args):
    out = JsonLines(args.out)
    stop = Stopper(args.stop, args.deadline)
    key = open(args.setup_key_file).read().strip()
    lock = threading.Lock()
    counter = [0]

    def next_index():
        with lock:
            if args.count and counter[0] >= args.count:
                return None
            counter[0] += 1
            return counter[0]

    def worker():
        while not stop.stopped():
            i = next_index()
            if i is None:
                return
            host = "%s-%03d" % (args.phase, i)
            pub = wg_keypair()
            body = {"apiVersion": "mesh.signalbox.dev/v1alpha1",
                    "kind": "Enrollment",
                    "spec": {"setupKey": key, "publicKey": pub,
                             "hostname": host, "agentVersion": "ha-test"}}
            unknown = False
            tries = 0
            while True:
                tries += 1
                t0 = now()
                try:
                    # no client certificate: the setup key is the credential
                    with requests.Session() as s:
                        s.trust_env = False
                        r = s.post(args.url + ENROLL, json=body,
                                   verify=args.ca, timeout=(2, 10),
                                   headers={"Connection": "close"})
                except requests.RequestException as e:
                    unknown = True
                    out.write({"event": "error", "host": host, "t": t0,
                               "error": type(e).__name__})
                    if tries > 100:
                        break
                    time.sleep(0.2)
                    continue
                if r.status_code == 201:
                    st = r.json().get("status") or {}
                    out.write({"event": "enrolled", "host": host, "pub": pub,
                               "peer": st.get("peer"),
                               "address": st.get("address"), "t": now(),
                               "tries": tries, "phase": args.phase})
                    break
                if r.status_code in RETRYABLE:
                    unknown = True
                    out.write({"event": "error", "host": host, "t": t0,
                               "error": "HTTP %d" % r.status_code,
                               "body": r.text[:200]})
                    if tries > 100:
                        break
                    time.sleep(0.2)
                    continue
                if r.status_code == 409 and unknown:
                    # an earlier attempt went through: verify finds it by key
                    out.write({"event": "confirmed", "host": host, "pub": pub,
                               "t": now(), "phase": args.phase})
                    break
                out.write({"event": "fatal", "host": host, "t": t0,
                           "status": r.status_code, "body": r.text[:300]})
                break
            if args.pause:
                time.sleep(args.pause)

    threads = [threading.Thread(target=worker, daemon=True)
               for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


# --- verify -------------------------------------------------------------------


def read_lines(path):
    res = []
    if not os.path.exists(path):
        return res
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    res.append(json.loads(line))
                except ValueError:
                    pass
    return res


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.names = []

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("PASS: %s%s" % (name, (" (%s)" % detail) if detail else ""))
        else:
            self.failed += 1
            self.names.append(name)
            print("FAIL: %s" % name)
            if detail:
                for d in str(detail).splitlines():
                    print("    " + d)
        sys.stdout.flush()
        return ok


def list_all(args, url, path):
    """A full LIST (chunked by limit/continue), retried on errors."""
    s = session(args)
    items = []
    cont = None
    for attempt in range(60):
        try:
            params = {"limit": "500"}
            if cont:
                params["continue"] = cont
            r = s.get(url + path, params=params, timeout=(2, 20))
            if r.status_code != 200:
                raise RuntimeError("HTTP %d: %s" % (r.status_code, r.text[:200]))
            d = r.json()
            items.extend(d.get("items") or [])
            cont = (d.get("metadata") or {}).get("continue")
            if not cont:
                return items
        except (requests.RequestException, RuntimeError, ValueError) as e:
            last = e
            items, cont = [], None
            time.sleep(0.5)
    raise RuntimeError("cannot list %s%s: %s" % (url, path, last))


def fmt_names(names, n=8):
    names = sorted(names)
    more = "" if len(names) <= n else " ... (%d in all)" % len(names)
    return ", ".join(str(x) for x in names[:n]) + more


def verify_load(args, c, phases):
    recs = read_lines(args.load_out)
    acks = [r for r in recs if r.get("event") == "ack"]
    confirmed = [r for r in recs if r.get("event") == "confirmed"]
    fatal = [r for r in recs if r.get("event") == "fatal"]
    stats = [r for r in recs if r.get("event") == "stats"]
    st = stats[-1] if stats else {}
    print("# load: %d acknowledged creates, %d confirmed after an unknown outcome, "
          "%d connection errors, %d retryable HTTP errors (429/5xx), %d other errors"
          % (len(acks), len(confirmed), st.get("conn_errors", -1),
             st.get("http_retryable", -1), len(fatal)))
    errs = {}
    for r in recs:
        if r.get("event") == "error":
            errs[r.get("error")] = errs.get(r.get("error"), 0) + 1
    if errs:
        print("#   errors by kind: %s" % json.dumps(errs, sort_keys=True))
    c.check("load: the writers ran and stopped cleanly",
            len(acks) >= args.min_acks and stats and not fatal,
            "acks %d (want >= %d), stats line %s, non-retryable errors: %s"
            % (len(acks), args.min_acks, bool(stats),
               json.dumps(fatal[:3])))
    unresolved = {r["name"] for r in recs if r.get("event") == "unresolved"}
    if unresolved:
        print("# load: %d writes left with an unknown outcome at the end: %s"
              % (len(unresolved), fmt_names(unresolved)))
    want = {}
    for r in acks + confirmed:
        want[r["name"]] = r["rv"]
    # each writer is sequential: its acknowledged revisions must grow
    bad_order = []
    for tid in sorted({r["tid"] for r in acks + confirmed}):
        seqs = sorted((r for r in acks + confirmed if r["tid"] == tid),
                      key=lambda r: r["seq"])
        for a, b in zip(seqs, seqs[1:]):
            if b["rv"] <= a["rv"]:
                bad_order.append("%s rv %d then %s rv %d" % (a["name"], a["rv"],
                                                           b["name"], b["rv"]))
    c.check("load: each writer's acknowledged revisions grow with its writes",
            not bad_order, "\n".join(bad_order[:5]))
    rvs = [r["rv"] for r in acks + confirmed]
    c.check("load: no two acknowledged writes share a resourceVersion",
            len(set(rvs)) == len(rvs),
            "%d writes, %d distinct revisions" % (len(rvs), len(set(rvs))))

    # the write outage around each failure: the longest time without an ack
    times = sorted(r["t"] for r in acks + confirmed)
    for x, y in zip(times, times[1:]):
        if y - x > 1:
            print("# load: no acknowledged write from %.2f to %.2f s (%.2f s)"
                  % (x - args.t0, y - args.t0, y - x))
    for r in recs:
        if r.get("event") == "error":
            print("# load: %.2f s %s %s: %s" % (r["t"] - args.t0, r["name"], r["error"],
                                                 (r.get("body") or "")[:160]))
    for name, (a, b) in phases.items():
        gaps = [y - x for x, y in zip(times, times[1:]) if y >= a and x <= b + 30]
        if gaps:
            print("# load: longest time without an acknowledged write around %s: "
                  "%.2f s" % (name, max(gaps)))

    # no acknowledged write lost: through each endpoint
    for label, url in args.endpoint:
        try:
            items = list_all(args, url, LEASES % args.namespace)
        except RuntimeError as e:
            c.check("no acknowledged write lost (through %s)" % label, False, str(e))
            continue
        have = {i["metadata"]["name"]: int(i["metadata"]["resourceVersion"])
                for i in items}
        lost = [n for n in want if n not in have]
        changed = [n for n in want if n in have and have[n] != want[n]]
        extra = [n for n in have if n not in want and n not in unresolved]
        c.check("no acknowledged write lost (through %s): %d of %d present"
                % (label, len(want) - len(lost), len(want)),
                not lost and not changed,
                "missing: %s\nwith another resourceVersion: %s"
                % (fmt_names(lost), fmt_names(changed)))
        c.check("no write appeared that the writers do not know of (through %s)"
                % label, not extra, "unknown objects: %s" % fmt_names(extra))
    return want, unresolved


def verify_watch(args, c, want, unresolved, path, label):
    recs = read_lines(path)
    evs = [r for r in recs if r.get("event") == "ev"]
    errors = [r for r in evs if r.get("type") == "ERROR"]
    https = [r for r in recs if r.get("event") == "http"]
    breaks = [r for r in recs if r.get("event") in ("broken", "closed")]
    opens = [r for r in recs if r.get("event") == "open"]
    real = [r for r in evs if r.get("type") in ("ADDED", "MODIFIED", "DELETED")]
    cut = [r for r in breaks if not r.get("timeout")]
    print("# %s: %d events, %d bookmarks, %d streams opened: %d cut (%s), %d read "
          "timeouts (10 s of silence), %d moved on request; HTTP errors at open: %d"
          % (label, len(real), len([r for r in evs if r.get("type") == "BOOKMARK"]),
             len(opens), len(cut),
             ", ".join(sorted({r.get("error", "closed by server") for r in cut})) or "-",
             len(breaks) - len(cut), len([r for r in recs if r.get("event") == "reopen"]),
             len(https)))
    c.check("%s: no ERROR event (410 Gone or other) while resuming" % label,
            not errors, json.dumps([e.get("status") for e in errors[:3]]))
    seen = {}
    dups = []
    for r in real:
        key = (r["type"], r["name"])
        if key in seen:
            dups.append("%s %s at rv %d and rv %d" % (r["type"], r["name"],
                                                     seen[key], r["rv"]))
        seen[key] = r["rv"]
    c.check("%s: every event exactly once (no duplicate)" % label, not dups,
            "\n".join(dups[:5]) + ("\n... %d duplicates" % len(dups) if len(dups) > 5 else ""))
    order = []
    for a, b in zip(real, real[1:]):
        if b["rv"] <= a["rv"]:
            order.append("%s rv %d after %s rv %d" % (b["name"], b["rv"], a["name"], a["rv"]))
    c.check("%s: events in resourceVersion order across the resumes" % label,
            not order, "\n".join(order[:5]))
    added = {r["name"]: r["rv"] for r in real if r["type"] == "ADDED"}
    missing = [n for n in want if n not in added]
    wrong = [n for n in want if n in added and added[n] != want[n]]
    extra = [n for n in added if n not in want and n not in unresolved]
    other = [r for r in real if r["type"] != "ADDED"]
    c.check("%s: saw the ADDED event of every recorded write, with its revision "
            "(%d of %d)" % (label, len(want) - len(missing), len(want)),
            not missing and not wrong,
            "missing: %s\nwith another resourceVersion: %s"
            % (fmt_names(missing), fmt_names(wrong)))
    c.check("%s: no event the writers did not cause" % label, not extra and not other,
            "unknown ADDED: %s; other types: %s"
            % (fmt_names(extra), json.dumps(other[:3])))
    # in order: the watch's order of the recorded writes is their ack order
    # by revision, i.e. the same sequence
    ack_seq = [n for n, _ in sorted(want.items(), key=lambda kv: kv[1])]
    watch_seq = [r["name"] for r in real if r["type"] == "ADDED" and r["name"] in want]
    c.check("%s: the writes arrive in the order of their acknowledged revisions"
            % label, ack_seq == watch_seq,
            "first difference at index %s" % next(
                (i for i, (x, y) in enumerate(zip(ack_seq, watch_seq)) if x != y),
                min(len(ack_seq), len(watch_seq))))
    # streams cut by a failure (not the client's own read timeout)
    return [r["t"] for r in breaks if not r.get("timeout")]


def verify_probe(args, c, phases):
    recs = read_lines(args.probe_out)
    if not recs:
        c.check("kubectl probes ran", False, "no probe recorded")
        return
    fails = [r for r in recs if not r["ok"]]
    hard = [r for r in fails if any(w in r.get("err", "") for w in
                                    ("Forbidden", "Unauthorized", "NotFound",
                                     "certificate", "x509"))]
    # outage: from the end of the last good probe before a failure to the
    # end of the next good probe
    longest, cur_start, worst = 0.0, None, None
    last_ok_end = recs[0]["t0"]
    outages = []
    for r in recs:
        if r["ok"]:
            if cur_start is not None:
                d = r["t1"] - cur_start
                outages.append((cur_start, r["t1"], d))
                if d > longest:
                    longest, worst = d, (cur_start, r["t1"])
                cur_start = None
            last_ok_end = r["t1"]
        elif cur_start is None:
            cur_start = last_ok_end
    still_down = cur_start is not None
    print("# kubectl get ns through HAProxy every 0.5 s: %d probes, %d failed; "
          "%d outages; longest %.2f s" % (len(recs), len(fails), len(outages), longest))
    for name, (a, b) in phases.items():
        near = [d for (x, y, d) in outages if y >= a and x <= b + 30]
        print("#   around %s: longest outage %.2f s (%d failed probes)"
              % (name, max(near) if near else 0.0,
                 len([r for r in fails if a - 1 <= r["t0"] <= b + 30])))
    errs = {}
    for r in fails:
        e = r.get("err", "").splitlines()[-1:] or [""]
        k = e[0][:90]
        errs[k] = errs.get(k, 0) + 1
    for k, v in sorted(errs.items(), key=lambda kv: -kv[1])[:5]:
        print("#   %dx %s" % (v, k))
    for (x, y, d) in outages:
        print("#   outage from %.2f to %.2f s (%.2f s)" % (x - args.t0, y - args.t0, d))
    c.check("kubectl through HAProxy: only retryable errors (no 401/403/404, no TLS error)",
            not hard, json.dumps(hard[:3]))
    c.check("kubectl through HAProxy: working at the end", not still_down)
    c.check("kubectl through HAProxy: longest outage %.2f s <= %.1f s"
            % (longest, args.max_outage), longest <= args.max_outage,
            "worst from %.2f to %.2f s" % (worst[0] - args.t0, worst[1] - args.t0) if worst else "")


def verify_mesh(args, c):
    recs = []
    for p in args.mesh_out:
        recs.extend(read_lines(p))
    enrolled = [r for r in recs if r.get("event") == "enrolled"]
    confirmed = [r for r in recs if r.get("event") == "confirmed"]
    fatal = [r for r in recs if r.get("event") == "fatal"]
    errors = [r for r in recs if r.get("event") == "error"]
    by_phase = {}
    for r in enrolled + confirmed:
        by_phase[r["phase"]] = by_phase.get(r["phase"], 0) + 1
    print("# mesh: %d enrolments acknowledged (%s), %d confirmed after an unknown "
          "outcome, %d retried errors, %d failed"
          % (len(enrolled), json.dumps(by_phase, sort_keys=True), len(confirmed),
             len(errors), len(fatal)))
    c.check("mesh: every enrolment succeeded (after retries of retryable errors)",
            not fatal, json.dumps(fatal[:3]))
    kubectl_names = [l.strip() for l in open(args.kubectl_peers)] if args.kubectl_peers else []
    kubectl_names = [n for n in kubectl_names if n]
    results = {}
    for label, url in args.endpoint:
        try:
            items = list_all(args, url, PEERS % args.mesh_namespace)
        except RuntimeError as e:
            c.check("mesh: list peers through %s" % label, False, str(e))
            continue
        results[label] = items
    if not results:
        return
    label, items = next(iter(results.items()))
    peers = {i["metadata"]["name"]: i for i in items}
    addr = {n: ((p.get("status") or {}).get("address")) for n, p in peers.items()}
    no_addr = [n for n, a in addr.items() if not a]
    c.check("mesh: every peer has an address (%d peers: %d enrolled, %d made with kubectl)"
            % (len(peers), len(enrolled) + len(confirmed), len(kubectl_names)),
            not no_addr, "without address: %s" % fmt_names(no_addr))
    rev = {}
    for n, a in addr.items():
        if a:
            rev.setdefault(a, []).append(n)
    twice = {a: ns for a, ns in rev.items() if len(ns) > 1}
    c.check("mesh: no address allocated twice (%d distinct addresses)" % len(rev),
            not twice, json.dumps(twice, sort_keys=True)[:800])
    keys = {}
    for n, p in peers.items():
        k = (p.get("spec") or {}).get("publicKey")
        keys.setdefault(k, []).append(n)
    dupkeys = {k: ns for k, ns in keys.items() if len(ns) > 1}
    c.check("mesh: each public key enrolled once", not dupkeys,
            json.dumps(dupkeys, sort_keys=True)[:800])
    want_names = set(kubectl_names) | {r["peer"] for r in enrolled}
    missing = [n for n in want_names if n not in peers]
    by_key = {(p.get("spec") or {}).get("publicKey"): n for n, p in peers.items()}
    missing += ["key %s... (%s)" % (r["pub"][:8], r["host"]) for r in confirmed
                if r["pub"] not in by_key]
    extra = [n for n in peers if n not in want_names and
             n not in {by_key.get(r["pub"]) for r in confirmed}]
    c.check("mesh: every acknowledged peer exists, and no other", not missing and not extra,
            "missing: %s\nunknown: %s" % (fmt_names(missing), fmt_names(extra)))
    moved = ["%s: enrolled with %s, now %s" % (r["peer"], r["address"], addr.get(r["peer"]))
             for r in enrolled if r["peer"] in addr and addr[r["peer"]] != r["address"]]
    c.check("mesh: each enrolled peer kept the address its enrolment answered",
            not moved, "\n".join(moved[:5]))
    if args.snapshot:
        moved = []
        for snap in args.snapshot:
            for n, a in json.load(open(snap)).items():
                if a and n in addr and addr[n] != a:
                    moved.append("%s: %s in %s, now %s" % (n, a, os.path.basename(snap), addr[n]))
        c.check("mesh: no address changed after it was assigned (snapshots before the failures)",
                not moved, "\n".join(moved[:5]))
    for l2, items2 in list(results.items())[1:]:
        a2 = {i["metadata"]["name"]: (i.get("status") or {}).get("address") for i in items2}
        c.check("mesh: %s and %s agree on every peer's address" % (label, l2), a2 == addr,
                "differ: %s" % fmt_names([n for n in set(a2) | set(addr)
                                          if a2.get(n) != addr.get(n)]))


def verify_leaders(args, c):
    """No two replicas lead at once: from the time-stamped logs, each
    replica's leading intervals ("now running" to "no longer running", its
    death or the end) must not overlap another's."""
    import glob
    kills = {}
    if args.timeline and os.path.exists(args.timeline):
        for line in open(args.timeline):
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "replica" and parts[2] == "killed":
                kills.setdefault("r" + parts[1], []).append(float(parts[-1]))
    intervals = []
    for label, pattern in args.leader_log or []:
        for path in sorted(glob.glob(pattern)):
            start = None
            for line in open(path):
                try:
                    t, msg = line.split(" ", 1)
                    t = float(t)
                except ValueError:
                    continue
                if "now running the controllers" in msg and start is None:
                    start = t
                elif "no longer running the controllers" in msg and start is not None:
                    intervals.append((label, start, t, os.path.basename(path)))
                    start = None
            if start is not None:
                # killed (the first kill of this replica after start) or alive
                end = min([k for k in kills.get(label, []) if k >= start] or [now()])
                intervals.append((label, start, end, os.path.basename(path)))
    overlaps = []
    for i, a in enumerate(intervals):
        for b in intervals[i + 1:]:
            if a[0] != b[0] and a[1] < b[2] and b[1] < a[2]:
                overlaps.append("%s %.2f-%.2f and %s %.2f-%.2f"
                                % (a[0], a[1] - args.t0, a[2] - args.t0,
                                   b[0], b[1] - args.t0, b[2] - args.t0))
    desc = "; ".join("%s %.1f-%.1f s" % (l, a - args.t0, b - args.t0)
                     for l, a, b, _ in sorted(intervals, key=lambda x: x[1]))
    print("# controllers led by: %s" % desc)
    c.check("controllers: never two replicas leading at once (%d leading intervals)"
            % len(intervals), intervals and not overlaps, "\n".join(overlaps))


def cmd_snapshot(args):
    items = list_all(args, args.url, PEERS % args.mesh_namespace)
    snap = {i["metadata"]["name"]: (i.get("status") or {}).get("address") for i in items}
    json.dump(snap, open(args.out, "w"), sort_keys=True)
    print("%d peers, %d with an address" % (len(snap), len([a for a in snap.values() if a])))
    return 0


def cmd_sessions(args):
    """Print "PORT SERVER" for each session of HAProxy's frontend api."""
    import socket
    so = socket.socket(socket.AF_UNIX)
    so.settimeout(5)
    so.connect(args.socket)
    so.sendall(b"show sess\n")
    data = b""
    while True:
        d = so.recv(65536)
        if not d:
            break
        data += d
    so.close()
    for line in data.decode(errors="replace").splitlines():
        f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        if f.get("fe") == args.frontend and "src" in f:
            print(f["src"].rsplit(":", 1)[1], f.get("srv", "-"))
    return 0


def cmd_verify(args):
    c = Checks()
    phases = {}
    for p in args.phase or []:
        name, a, b = p.split(":")
        phases[name] = (float(a), float(b))
    want, unresolved = verify_load(args, c, phases)
    cuts = []
    for i, w in enumerate(args.watch_out):
        cuts += verify_watch(args, c, want, unresolved, w, "watch %d" % (i + 1))
    if "replica-kill" in phases:
        a, b = phases["replica-kill"]
        n = len([t for t in cuts if a - 0.5 <= t <= b + 5])
        c.check("a watch stream was cut by the replica's death and resumed "
                "(%d cut then, %d in all)" % (n, len(cuts)), n >= 1)
    verify_probe(args, c, phases)
    verify_mesh(args, c)
    if args.leader_log:
        verify_leaders(args, c)
    with open(args.result, "w") as f:
        json.dump({"passed": c.passed, "failed": c.failed, "names": c.names}, f)
    return 0 if c.failed == 0 else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--stop", default=None, help="stop once this file exists")
    ap.add_argument("--deadline", type=float, default=600)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("load")
    p.add_argument("--url", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--writers", type=int, default=2)
    p.add_argument("--pause", type=float, default=0.02)
    p.add_argument("--out", required=True)

    p = sub.add_parser("watch")
    p.add_argument("--url", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--rv", type=int, required=True)
    p.add_argument("--target", help="file with the revision to reach before stopping")
    p.add_argument("--reopen", help="when this file appears, delete it and resume on a new connection")
    p.add_argument("--out", required=True)

    p = sub.add_parser("probe")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--direct", nargs=2, action="append", metavar=("LABEL", "URL"),
                   help="also GET /api/v1/namespaces there (diagnostics)")
    p.add_argument("--out", required=True)

    p = sub.add_parser("mesh")
    p.add_argument("--url", required=True)
    p.add_argument("--setup-key-file", required=True)
    p.add_argument("--phase", required=True)
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--pause", type=float, default=0)
    p.add_argument("--out", required=True)

    p = sub.add_parser("snapshot")
    p.add_argument("--url", required=True)
    p.add_argument("--mesh-namespace", required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("sessions")
    p.add_argument("--socket", required=True)
    p.add_argument("--frontend", default="api")

    p = sub.add_parser("verify")
    p.add_argument("--endpoint", nargs=2, action="append", required=True,
                   metavar=("LABEL", "URL"))
    p.add_argument("--namespace", required=True)
    p.add_argument("--mesh-namespace", required=True)
    p.add_argument("--load-out", required=True)
    p.add_argument("--watch-out", action="append", default=[])
    p.add_argument("--probe-out", required=True)
    p.add_argument("--mesh-out", action="append", default=[])
    p.add_argument("--kubectl-peers")
    p.add_argument("--snapshot", action="append", default=[])
    p.add_argument("--phase", action="append", help="NAME:T0:T1")
    p.add_argument("--min-acks", type=int, default=100)
    p.add_argument("--max-outage", type=float, default=10)
    p.add_argument("--result", required=True)
    p.add_argument("--t0", type=float, default=0, help="times are printed relative to it")
    p.add_argument("--leader-log", nargs=2, action="append", metavar=("LABEL", "GLOB"),
                   help="time-stamped logs of a replica (one file per start)")
    p.add_argument("--timeline", help="the test's timeline (replica N killed T)")

    args = ap.parse_args()
    return {"load": cmd_load, "watch": cmd_watch, "probe": cmd_probe,
            "mesh": cmd_mesh, "snapshot": cmd_snapshot, "sessions": cmd_sessions,
            "verify": cmd_verify}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
