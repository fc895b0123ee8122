#!/usr/bin/python3
"""End-to-end test of signalbox with the official Kubernetes Python client.

Run with Debian's /usr/bin/python3 (python3-kubernetes 22, python3-yaml).
The binary comes from $SB_BINARY, the CRDs from $SB_TESTDATA/crds.

Covers, as a user of the client would:
  1. CRUD through kubernetes.dynamic.DynamicClient on the real ServiceMonitor
     CRD created through the API; 404 / 409 / 422 errors; CoreV1Api namespaces.
  2. A watch that survives a server restart and resumes from its last
     resourceVersion, with every later change delivered exactly once, in order.
  3. After compaction (--history-revisions 5) and a restart (which refills
     the server's event ring from the compacted store history), a watch from
     an old resourceVersion gets 410 Expired; the client relists and watches
     again.  (A running server may keep serving old revisions from its event
     ring, as kube-apiserver's watch cache does whatever etcd compacted.)

Prints PASS/FAIL per check and ends with "N passed, M failed"; exits 1 if
anything failed.  Every wait is bounded by a deadline.
"""

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import yaml
import kubernetes
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

SB_BINARY = os.environ.get("SB_BINARY") or "/work/main/build-py/signalbox"
SB_TESTDATA = os.environ.get("SB_TESTDATA") or "/work/shared/testdata"
CRD_FILE = os.path.join(SB_TESTDATA, "crds",
                        "monitoring.coreos.com_servicemonitors.yaml")

T_START = time.monotonic()
TOTAL_BUDGET = 110.0          # seconds; the whole test must take < 2 minutes

NS = "sb-e2e"                 # namespace of the CRUD checks (part 1)
NS_W = "sb-e2e-watch"         # namespace of the watch checks (parts 2, 3)
NS_TMP = "sb-e2e-tmp"         # namespace created and deleted by the ns checks
SM_API = "monitoring.coreos.com/v1"
SM_KIND = "ServiceMonitor"

# ----------------------------------------------------------------- reporting

PASSED = 0
FAILED = 0
FAILURES = []


def check(name, ok, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print("PASS %s%s" % (name, (": " + detail) if detail else ""), flush=True)
    else:
        FAILED += 1
        FAILURES.append(name)
        print("FAIL %s%s" % (name, (": " + detail) if detail else ""), flush=True)
    return ok


def info(msg):
    print("     [%6.2fs] %s" % (time.monotonic() - T_START, msg), flush=True)


def wait_for(pred, timeout, interval=0.05):
    """Poll pred() until it returns a truthy value or the deadline passes
    (never past the whole test's budget)."""
    deadline = min(time.monotonic() + timeout, T_START + TOTAL_BUDGET)
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def status_body(e):
    """Decode the Status object carried by an ApiException (or None)."""
    body = getattr(e, "body", None)
    if body is None:
        return None
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        return json.loads(body)
    except Exception:
        return None


def expect_api_error(name, fn, code, reason=None):
    """Run fn(); it must raise ApiException with the given status.
    Returns the decoded Status body (or None)."""
    try:
        r = fn()
    except ApiException as e:
        st = status_body(e)
        ok = e.status == code
        detail = "HTTP %s, body %s" % (e.status, json.dumps(st) if st else e.body)
        if ok and reason is not None:
            ok = isinstance(st, dict) and st.get("reason") == reason \
                and st.get("code") == code and st.get("kind") == "Status"
            detail = "expected Status reason %s code %d; got %s" % (
                reason, code, detail)
        check(name, ok, detail)
        return st
    except Exception as e:  # noqa
        check(name, False, "expected ApiException %d, got %r" % (code, e))
        return None
    check(name, False, "expected ApiException %d, request succeeded: %s" % (
        code, str(r)[:300]))
    return None


# ------------------------------------------------------------------- harness

BASE_DIR = tempfile.mkdtemp(prefix="sb-e2e-py-")
DATA_DIR = os.path.join(BASE_DIR, "data")
os.mkdir(DATA_DIR)
SERVERS = []          # every Server object ever started (for cleanup)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """One signalbox serve process; started and stopped by PID only."""

    count = 0

    def __init__(self, data_dir, port, extra_args=()):
        self.data_dir = data_dir
        self.port = port
        self.extra_args = list(extra_args)
        self.proc = None
        Server.count += 1
        self.log_path = os.path.join(BASE_DIR, "server-%d.log" % Server.count)

    def start(self, timeout=10.0):
        args = [SB_BINARY, "serve", "--data-dir", self.data_dir,
                "--listen", "127.0.0.1:%d" % self.port] + self.extra_args
        info("starting: %s" % " ".join(args))
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        SERVERS.append(self)

        def ready():
            if self.proc.poll() is not None:
                return "exited"
            with open(self.log_path, "rb") as f:
                return "ready" if b"ready on" in f.read() else None
        r = wait_for(ready, timeout)
        if r != "ready":
            raise RuntimeError("server did not become ready (%s); log:\n%s"
                               % (r or "timeout", self.log_tail()))
        info("server pid %d ready on port %d" % (self.proc.pid, self.port))

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM by PID; returns (exit code or None, seconds taken)."""
        if not self.running():
            return (self.proc.returncode if self.proc else None, 0.0)
        t0 = time.monotonic()
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            info("pid %d ignored SIGTERM for %.0fs, sending SIGKILL"
                 % (self.proc.pid, timeout))
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
            rc = None
        self.log.close()
        return rc, time.monotonic() - t0

    def kill(self):
        if self.running():
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            except Exception:
                pass

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except Exception as e:
            return "(no log: %r)" % e


def cleanup():
    for s in SERVERS:
        if s.running():
            try:
                s.stop(timeout=5)
            except Exception:
                s.kill()
    if FAILED and os.environ.get("SB_KEEP"):
        print("keeping %s" % BASE_DIR)
    else:
        shutil.rmtree(BASE_DIR, ignore_errors=True)


atexit.register(cleanup)


def _watchdog():
    """Last resort if a request hangs: report, clean up, exit within 2 min."""
    global FAILED
    FAILED += 1
    print("FAIL watchdog: the test did not finish within %.0f s (a request "
          "or a stream hung); stopping" % (TOTAL_BUDGET + 5), flush=True)
    print("%d passed, %d failed" % (PASSED, FAILED), flush=True)
    try:
        cleanup()
    finally:
        os._exit(1)


WATCHDOG = threading.Timer(TOTAL_BUDGET + 5, _watchdog)
WATCHDOG.daemon = True
WATCHDOG.start()


def _on_signal(signum, frame):
    cleanup()
    os._exit(2)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


class Clients:
    """Official clients built from the admin.kubeconfig the server writes."""

    def __init__(self, data_dir):
        kubeconfig = os.path.join(data_dir, "admin.kubeconfig")
        self.api_client = k8s_config.new_client_from_config(
            config_file=kubeconfig)
        # (A hung request is caught by the watchdog below.)
        self.core = k8s_client.CoreV1Api(self.api_client)
        self.custom = k8s_client.CustomObjectsApi(self.api_client)
        # Keep the discovery cache private to this run.
        self.dyn = DynamicClient(
            self.api_client,
            cache_file=os.path.join(BASE_DIR, "discovery-%d.json"
                                    % int(time.monotonic() * 1000)))

    def resource(self, api_version, kind, timeout=10.0):
        """Look a resource up through discovery, refreshing the cache while
        a freshly created CRD is not served yet."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.dyn.resources.get(api_version=api_version,
                                              kind=kind)
            except ResourceNotFoundError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
                self.dyn.resources.invalidate_cache()


def rv_of(obj):
    if obj is None:
        return None
    if hasattr(obj, "to_dict"):
        obj = obj.to_dict()
    return (obj.get("metadata") or {}).get("resourceVersion")


class WatchThread(threading.Thread):
    """Runs a dynamic-client watch and records the events it yields."""

    def __init__(self, resource, namespace, resource_version, timeout=60,
                 label="watch"):
        super().__init__(daemon=True)
        self.resource = resource
        self.namespace = namespace
        self.resource_version = resource_version
        self.timeout = timeout
        self.label = label
        self.watcher = k8s_watch.Watch()
        self.events = []          # (type, name, rv, raw object)
        self.error = None
        self.ended = threading.Event()

    def run(self):
        try:
            for ev in self.resource.watch(namespace=self.namespace,
                                          resource_version=self.resource_version,
                                          timeout=self.timeout,
                                          watcher=self.watcher):
                raw = ev["raw_object"]
                md = raw.get("metadata") or {}
                self.events.append((ev["type"], md.get("name"),
                                    md.get("resourceVersion"), raw))
        except BaseException as e:  # noqa  (record whatever ends the stream)
            self.error = e
        finally:
            self.ended.set()

    def stop(self):
        self.watcher.stop()

    def summary(self, events=None):
        events = self.events if events is None else events
        return [(t, n, rv) for (t, n, rv, _) in events]


# ------------------------------------------------------------- test objects

def service_monitor(name, labels=None, port="web", app=None, ns=NS):
    return {
        "apiVersion": SM_API,
        "kind": SM_KIND,
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": {
            "selector": {"matchLabels": {"app": app or name}},
            "endpoints": [{"port": port}],
        },
    }


class Recorder:
    """Performs writes and records the watch events they must produce."""

    def __init__(self, res, ns):
        self.res = res
        self.ns = ns
        self.expected = []        # (type, name, rv or None for DELETED)

    def create(self, name, **kw):
        obj = self.res.create(body=service_monitor(name, ns=self.ns, **kw), namespace=self.ns)
        self.expected.append(("ADDED", name, rv_of(obj)))
        return obj

    def patch(self, name, patch):
        obj = self.res.patch(name=name, namespace=self.ns, body=patch,
                             content_type="application/merge-patch+json")
        self.expected.append(("MODIFIED", name, rv_of(obj)))
        return obj

    def delete(self, name):
        obj = self.res.delete(name=name, namespace=self.ns)
        self.expected.append(("DELETED", name, None))
        return obj


def compare_events(name, got, expected, after_rv=None):
    """got: [(type, name, rv)], expected: [(type, name, rv|None)].
    Every expected event exactly once, in order, nothing else; resourceVersions
    strictly increasing (and > after_rv)."""
    problems = []
    if len(got) != len(expected):
        problems.append("expected %d events, got %d" % (len(expected), len(got)))
    for i, (g, e) in enumerate(zip(got, expected)):
        if g[0] != e[0] or g[1] != e[1] or (e[2] is not None and g[2] != e[2]):
            problems.append("event #%d: expected %s, got %s" % (i, e, g))
            break
    rvs = [int(g[2]) for g in got if g[2] and str(g[2]).isdigit()]
    if len(rvs) != len(got):
        problems.append("non-numeric or missing resourceVersion in events")
    if any(b <= a for a, b in zip(rvs, rvs[1:])):
        problems.append("resourceVersions not strictly increasing: %s" % rvs)
    if after_rv is not None and rvs and min(rvs) <= int(after_rv):
        problems.append("event(s) at or before resourceVersion %s replayed"
                        % after_rv)
    keys = [(g[0], g[1], g[2]) for g in got]
    if len(set(keys)) != len(keys):
        problems.append("duplicate events")
    return check(name, not problems,
                 "; ".join(problems) + ("\n       got:      %s\n       expected: %s"
                                        % (got, expected) if problems else
                                        "%d events" % len(got)))


# ==================================================================== part 1

def part1_crud(cl):
    print("--- part 1: CRUD with the dynamic client, namespaces with CoreV1Api",
          flush=True)

    # Namespaces through CoreV1Api.
    for ns in (NS, NS_TMP):
        cl.core.create_namespace(k8s_client.V1Namespace(
            metadata=k8s_client.V1ObjectMeta(name=ns)))
    names = [n.metadata.name for n in cl.core.list_namespace().items]
    check("CoreV1Api.list_namespace shows created namespaces",
          NS in names and NS_TMP in names, "namespaces: %s" % names)
    got = cl.core.read_namespace(NS_TMP)
    check("CoreV1Api.read_namespace", got.metadata.name == NS_TMP
          and bool(got.metadata.resource_version) and bool(got.metadata.uid),
          "name=%s rv=%s uid=%s" % (got.metadata.name,
                                    got.metadata.resource_version,
                                    got.metadata.uid))
    expect_api_error("CoreV1Api.create_namespace duplicate -> 409 AlreadyExists",
                     lambda: cl.core.create_namespace(k8s_client.V1Namespace(
                         metadata=k8s_client.V1ObjectMeta(name=NS_TMP))),
                     409, "AlreadyExists")
    cl.core.delete_namespace(NS_TMP)

    def ns_gone():
        try:
            n = cl.core.read_namespace(NS_TMP)
            return None if n.metadata.deletion_timestamp is None else "terminating"
        except ApiException as e:
            return "gone" if e.status == 404 else None
    r = wait_for(ns_gone, 10, 0.1)
    check("CoreV1Api.delete_namespace (gone or Terminating)", bool(r),
          "state after delete: %s" % r)
    names = [n.metadata.name for n in cl.core.list_namespace().items]
    if r == "gone":
        check("CoreV1Api.list_namespace no longer shows deleted namespace",
              NS_TMP not in names, "namespaces: %s" % names)

    # The CRD, created through the API.
    with open(CRD_FILE) as f:
        crd_body = [d for d in yaml.safe_load_all(f) if d][0]
    crds = cl.resource("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    crds.create(body=crd_body)

    def established():
        c = crds.get(name=crd_body["metadata"]["name"]).to_dict()
        for cond in (c.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Established" and cond.get("status") == "True":
                return True
        return False
    check("CRD servicemonitors becomes Established", wait_for(established, 10, 0.1))

    res = cl.resource(SM_API, SM_KIND)
    check("dynamic discovery finds ServiceMonitor",
          res.namespaced and res.name == "servicemonitors",
          "name=%s namespaced=%s" % (res.name, res.namespaced))

    # Create.
    a = res.create(body=service_monitor("sm-a", {"app": "a", "team": "x"}),
                   namespace=NS)
    res.create(body=service_monitor("sm-b", {"app": "b", "team": "x"}),
               namespace=NS)
    res.create(body=service_monitor("sm-c", {"app": "c", "team": "y"}),
               namespace=NS)
    check("create returns object with uid, resourceVersion, generation 1",
          a.metadata.uid and a.metadata.resourceVersion
          and a.metadata.generation == 1 and a.kind == SM_KIND,
          "metadata=%s" % a.to_dict()["metadata"])
    expect_api_error("create duplicate -> 409 AlreadyExists",
                     lambda: res.create(body=service_monitor("sm-a"),
                                        namespace=NS), 409, "AlreadyExists")

    # Get.
    g = res.get(name="sm-a", namespace=NS)
    check("get returns the object",
          g.metadata.name == "sm-a" and g.metadata.namespace == NS
          and g.spec.endpoints[0].port == "web"
          and g.metadata.resourceVersion == a.metadata.resourceVersion,
          "got %s" % json.dumps(g.to_dict())[:300])

    # List with selectors.
    def names_of(lst):
        return sorted(i.metadata.name for i in lst.items)
    lst = res.get(namespace=NS)
    check("list returns all objects with a list resourceVersion",
          names_of(lst) == ["sm-a", "sm-b", "sm-c"]
          and bool(lst.metadata.resourceVersion)
          and lst.kind == "ServiceMonitorList",
          "kind=%s names=%s rv=%s" % (lst.kind, names_of(lst),
                                      lst.metadata.resourceVersion))
    cases = [
        ({"label_selector": "team=x"}, ["sm-a", "sm-b"]),
        ({"label_selector": "team=x,app!=a"}, ["sm-b"]),
        ({"label_selector": "app in (a,c)"}, ["sm-a", "sm-c"]),
        ({"label_selector": "team"}, ["sm-a", "sm-b", "sm-c"]),
        ({"label_selector": "!team"}, []),
        ({"field_selector": "metadata.name=sm-b"}, ["sm-b"]),
        ({"field_selector": "metadata.name!=sm-b"}, ["sm-a", "sm-c"]),
        ({"field_selector": "metadata.namespace=%s" % NS},
         ["sm-a", "sm-b", "sm-c"]),
        ({"field_selector": "metadata.name=sm-a",
          "label_selector": "team=y"}, []),
    ]
    for kw, want in cases:
        try:
            got = names_of(res.get(namespace=NS, **kw))
            check("list %s" % kw, got == want, "got %s, want %s" % (got, want))
        except ApiException as e:
            check("list %s" % kw, False, "ApiException %s %s" % (e.status, e.body))
    # Cluster-wide list with a namespace field selector.
    try:
        got = names_of(res.get(field_selector="metadata.namespace=%s" % NS))
        check("list all namespaces with field_selector metadata.namespace",
              got == ["sm-a", "sm-b", "sm-c"], "got %s" % got)
    except ApiException as e:
        check("list all namespaces with field_selector metadata.namespace",
              False, "ApiException %s %s" % (e.status, e.body))

    # Replace with the current resourceVersion.
    body = res.get(name="sm-a", namespace=NS).to_dict()
    old_rv = body["metadata"]["resourceVersion"]
    body["spec"]["endpoints"][0]["port"] = "metrics"
    body["metadata"]["labels"]["replaced"] = "yes"
    r = res.replace(body=body, namespace=NS)
    check("replace with current resourceVersion succeeds",
          r.spec.endpoints[0].port == "metrics"
          and r.metadata.labels.replaced == "yes"
          and r.metadata.resourceVersion != old_rv
          and r.metadata.generation == 2,
          "rv %s -> %s, generation %s" % (old_rv, r.metadata.resourceVersion,
                                          r.metadata.generation))

    # Replace with the stale resourceVersion -> 409.
    body["spec"]["endpoints"][0]["port"] = "stale"
    st = expect_api_error("replace with stale resourceVersion -> 409 Conflict",
                          lambda: res.replace(body=body, namespace=NS),
                          409, "Conflict")
    g = res.get(name="sm-a", namespace=NS)
    check("conflicting replace left the object unchanged",
          g.spec.endpoints[0].port == "metrics"
          and g.metadata.resourceVersion == r.metadata.resourceVersion,
          "port=%s rv=%s" % (g.spec.endpoints[0].port, g.metadata.resourceVersion))

    # Merge patch.
    p = res.patch(name="sm-b", namespace=NS,
                  body={"metadata": {"labels": {"patched": "1", "team": None}},
                        "spec": {"jobLabel": "job"}},
                  content_type="application/merge-patch+json")
    pd = p.to_dict()
    labels = pd["metadata"].get("labels") or {}
    check("merge patch applies (adds, removes with null)",
          labels == {"app": "b", "patched": "1"}
          and pd["spec"].get("jobLabel") == "job"
          and pd["spec"]["endpoints"][0].get("port") == "web",
          "labels=%s spec=%s" % (labels, pd["spec"]))
    got = names_of(res.get(namespace=NS, label_selector="team=x"))
    check("list after patch reflects removed label", got == ["sm-a"],
          "got %s" % got)
    # Merge patch carrying a stale resourceVersion -> 409.
    expect_api_error("merge patch with stale resourceVersion -> 409 Conflict",
                     lambda: res.patch(name="sm-b", namespace=NS,
                                       body={"metadata": {"resourceVersion": old_rv,
                                                          "labels": {"x": "y"}}},
                                       content_type="application/merge-patch+json"),
                     409, "Conflict")

    # 404s.
    st = expect_api_error("get missing object -> 404 NotFound",
                          lambda: res.get(name="nope", namespace=NS),
                          404, "NotFound")
    check("404 Status names the object",
          isinstance(st, dict) and (st.get("details") or {}).get("name") == "nope",
          "details=%s" % (st or {}).get("details"))
    expect_api_error("patch missing object -> 404 NotFound",
                     lambda: res.patch(name="nope", namespace=NS,
                                       body={"metadata": {"labels": {"a": "b"}}},
                                       content_type="application/merge-patch+json"),
                     404, "NotFound")

    # 422 with details.causes[].field.
    def causes_of(st):
        return ((st or {}).get("details") or {}).get("causes") or []

    bad = service_monitor("bad")
    del bad["spec"]["endpoints"]
    st = expect_api_error("create without required spec.endpoints -> 422 Invalid",
                          lambda: res.create(body=bad, namespace=NS),
                          422, "Invalid")
    fields = [c.get("field") for c in causes_of(st)]
    check("422 causes[].field names spec.endpoints", "spec.endpoints" in fields,
          "causes=%s" % causes_of(st))
    check("422 details name the object and kind",
          ((st or {}).get("details") or {}).get("name") == "bad"
          and ((st or {}).get("details") or {}).get("kind") == SM_KIND
          and ((st or {}).get("details") or {}).get("group")
          == "monitoring.coreos.com",
          "details=%s" % (st or {}).get("details"))

    bad = service_monitor("bad")
    bad["spec"]["endpoints"][0]["scheme"] = "ftp"
    st = expect_api_error("create with scheme outside enum -> 422 Invalid",
                          lambda: res.create(body=bad, namespace=NS),
                          422, "Invalid")
    fields = [c.get("field") for c in causes_of(st)]
    check("422 causes[].field names spec.endpoints[0].scheme",
          "spec.endpoints[0].scheme" in fields, "causes=%s" % causes_of(st))

    bad = service_monitor("sm-c")
    bad["spec"]["endpoints"] = "not-a-list"
    cur = res.get(name="sm-c", namespace=NS)
    bad["metadata"]["resourceVersion"] = cur.metadata.resourceVersion
    st = expect_api_error("replace with wrong type -> 422 Invalid",
                          lambda: res.replace(body=bad, namespace=NS),
                          422, "Invalid")
    fields = [c.get("field") for c in causes_of(st)]
    check("422 causes[].field names spec.endpoints (type)",
          "spec.endpoints" in fields, "causes=%s" % causes_of(st))
    expect_api_error("invalid object was not created",
                     lambda: res.get(name="bad", namespace=NS), 404, "NotFound")

    # Delete.
    d = res.delete(name="sm-c", namespace=NS)
    check("delete returns the deleted object or a Success Status",
          (d.kind == SM_KIND and d.metadata.name == "sm-c")
          or (d.kind == "Status" and d.status == "Success"),
          "kind=%s" % d.kind)
    expect_api_error("get after delete -> 404 NotFound",
                     lambda: res.get(name="sm-c", namespace=NS), 404, "NotFound")
    expect_api_error("delete missing object -> 404 NotFound",
                     lambda: res.delete(name="sm-c", namespace=NS),
                     404, "NotFound")
    got = names_of(res.get(namespace=NS))
    check("list after delete", got == ["sm-a", "sm-b"], "got %s" % got)

    # Clean the namespace for part 2 (which counts every event).
    res.delete(name="sm-a", namespace=NS)
    res.delete(name="sm-b", namespace=NS)
    return res


# ==================================================================== part 2

def part2_restart(cl, server):
    print("--- part 2: a watch survives a server restart", flush=True)
    cl.core.create_namespace(k8s_client.V1Namespace(
        metadata=k8s_client.V1ObjectMeta(name=NS_W)))
    res = cl.resource(SM_API, SM_KIND)
    rv0 = res.get(namespace=NS_W).metadata.resourceVersion

    # The official client sends "watch=True" (Python's str(True)); the API
    # server must treat any value but "0"/"false" as true and stream events.
    resp = cl.custom.list_namespaced_custom_object(
        "monitoring.coreos.com", "v1", NS_W, "servicemonitors", watch=True,
        resource_version=rv0, timeout_seconds=1, _preload_content=False,
        _request_timeout=10)
    body = resp.data.decode("utf-8", "replace")
    resp.release_conn()
    check("client watch request (watch=True) is served as a watch stream, "
          "not a List", '"kind":"ServiceMonitorList"' not in body.replace(" ", ""),
          "GET ...?watch=True&resourceVersion=%s&timeoutSeconds=1 returned: %s"
          % (rv0, body[:200]))
    w1 = WatchThread(res, NS_W, rv0, timeout=120, label="w1")
    w1.start()
    rec = Recorder(res, NS_W)

    # Batch 1, seen by the watch while the server is up.
    rec.create("w-1", labels={"step": "0"})
    rec.create("w-2", labels={"step": "0"})
    rec.create("w-3", labels={"step": "0"})
    rec.patch("w-1", {"metadata": {"labels": {"step": "1"}}})
    body = res.get(name="w-2", namespace=NS_W).to_dict()
    body["spec"]["endpoints"][0]["port"] = "replaced"
    obj = res.replace(body=body, namespace=NS_W)
    rec.expected.append(("MODIFIED", "w-2", rv_of(obj)))
    rec.delete("w-3")
    batch1 = list(rec.expected)
    wait_for(lambda: len(w1.events) >= len(batch1) or w1.ended.is_set(), 10)
    time.sleep(0.3)     # would catch extra (duplicate) events
    compare_events("watch from list resourceVersion delivers batch 1 in order",
                   w1.summary(), batch1, after_rv=rv0)
    if w1.events and w1.events[-1][0] == "DELETED":
        # The DELETED event carries the revision of the deletion.
        check("DELETED event carries a resourceVersion newer than the last "
              "write to the object",
              int(w1.events[-1][2]) > int(rec.expected[2][2]),
              "delete event rv %s, create rv %s" % (w1.events[-1][2],
                                                   rec.expected[2][2]))
    r1 = w1.events[-1][2] if w1.events else rv0
    n_seen_before = len(w1.events)

    # Batch 2, written right before the server stops: the watch may see any
    # prefix of it.
    rec.create("w-4", labels={"step": "0"})
    rec.patch("w-1", {"metadata": {"labels": {"step": "2"}}})
    rec.delete("w-2")
    rec.patch("w-4", {"spec": {"jobLabel": "four"}})
    batch2 = rec.expected[len(batch1):]
    check("watch is still open just before the server stops",
          not w1.ended.is_set(), "ended early: error=%r" % w1.error)
    rc, took = server.stop(timeout=10)
    check("server stops cleanly on SIGTERM (exit 0)", rc == 0,
          "exit code %s after %.2fs; log tail:\n%s" % (rc, took,
                                                       server.log_tail(5)))
    ended = w1.ended.wait(timeout=10)
    check("watch stream ends or errors when the server stops", ended,
          "ended=%s error=%r" % (ended, w1.error))
    info("w1 ended: error=%r, %d events" % (w1.error, len(w1.events)))
    seen2 = w1.summary()[n_seen_before:]
    compare_events("events seen before the stop are a prefix of batch 2",
                   seen2, batch2[:len(seen2)], after_rv=r1)
    last_rv = w1.events[-1][2] if w1.events else rv0
    info("last resourceVersion seen by w1: %s (saw %d/%d of batch 2)"
         % (last_rv, len(seen2), len(batch2)))

    # Restart on the same data dir and port.
    server2 = Server(DATA_DIR, server.port)
    server2.start()
    cl2 = Clients(DATA_DIR)
    res = cl2.resource(SM_API, SM_KIND)
    got = sorted((i.metadata.name, i.metadata.labels.step)
                 for i in res.get(namespace=NS_W).items)
    check("state persisted across restart", got == [("w-1", "2"), ("w-4", "0")],
          "got %s" % got)

    # Resume from the last resourceVersion seen; and, independently, from the
    # end of batch 1 (batch 2 must then come from the store's history).
    w2 = WatchThread(res, NS_W, last_rv, timeout=120, label="w2")
    w3 = WatchThread(res, NS_W, r1, timeout=120, label="w3")
    w2.start()
    w3.start()
    rec.res = res
    mark = len(rec.expected)
    rec.create("w-5", labels={"step": "0"})
    rec.patch("w-5", {"metadata": {"labels": {"step": "1"}}})
    rec.delete("w-1")
    rec.patch("w-4", {"metadata": {"labels": {"step": "3"}}})
    batch3 = rec.expected[mark:]
    want2 = batch2[len(seen2):] + batch3
    want3 = batch2 + batch3
    wait_for(lambda: (len(w2.events) >= len(want2) or w2.ended.is_set())
             and (len(w3.events) >= len(want3) or w3.ended.is_set()), 10)
    time.sleep(0.5)     # would catch extra (duplicate) events
    check("resumed watch is still open (no error)", w2.error is None
          and not w2.ended.is_set(), "error=%r" % w2.error)
    compare_events("watch resumed from last seen resourceVersion %s: every "
                   "later change exactly once, in order" % last_rv,
                   w2.summary(), want2, after_rv=last_rv)
    compare_events("watch resumed from end of batch 1 (rv %s): batch 2 "
                   "from history + batch 3, exactly once, in order" % r1,
                   w3.summary(), want3, after_rv=r1)
    w2.stop()
    w3.stop()


# ==================================================================== part 3

def part3_compaction(server):
    print("--- part 3: compaction, 410 Expired, relist", flush=True)
    rc, took = server.stop(timeout=10)
    check("server stops cleanly on SIGTERM before the compaction run (exit 0)",
          rc == 0, "exit code %s after %.2fs" % (rc, took))
    server3 = Server(DATA_DIR, server.port, ["--history-revisions", "5"])
    server3.start()
    cl = Clients(DATA_DIR)
    res = cl.resource(SM_API, SM_KIND)
    rec = Recorder(res, NS_W)

    rv_old = res.get(namespace=NS_W).metadata.resourceVersion
    info("old resourceVersion: %s" % rv_old)
    state = {o["metadata"]["name"]: o["metadata"].get("labels") or {}
             for o in res.get(namespace=NS_W).to_dict()["items"]}
    names = ["c-%02d" % i for i in range(20)]
    for n in names:                               # 20 creates
        rec.create(n, labels={"step": "0"})
        state[n] = {"step": "0"}
    for n in names:                               # 20 patches
        rec.patch(n, {"metadata": {"labels": {"step": "1"}}})
        state[n] = {"step": "1"}
    for n in names[:10]:                          # 10 deletes
        rec.delete(n)
        del state[n]
    for n in names[10:]:                          # 10 patches
        rec.patch(n, {"metadata": {"labels": {"step": "2"}}})
        state[n] = {"step": "2"}
    last_write_rv = rec.expected[-1][2]
    info("60 writes done, last write resourceVersion %s" % last_write_rv)

    # The running server may still serve rv_old from its in-memory event ring
    # (as kube-apiserver serves a watch from its watch cache whatever etcd
    # compacted); only report what it does.
    try:
        n = len(list(res.watch(namespace=NS_W, resource_version=rv_old,
                               timeout=1)))
        info("before restart, watch from %s served %d events from the ring"
             % (rv_old, n))
    except ApiException as e:
        info("before restart, watch from %s: ApiException %s %s"
             % (rv_old, e.status, e.reason))

    # Let the store compact (it checks about every 200 ms), then restart:
    # the ring is refilled from the store's compacted history, so rv_old is
    # now older than anything the server keeps.
    time.sleep(1.5)
    rc, took = server3.stop(timeout=10)
    check("server with --history-revisions stops cleanly on SIGTERM (exit 0)",
          rc == 0, "exit code %s after %.2fs" % (rc, took))
    server3 = Server(DATA_DIR, server3.port, ["--history-revisions", "5"])
    server3.start()
    cl = Clients(DATA_DIR)
    res = cl.resource(SM_API, SM_KIND)
    rec.res = res

    # A watch from a revision the compacted history still holds works
    # (the ring was refilled from the store at startup).
    try:
        from_rv = str(int(last_write_rv) - 2)
        evs = list(res.watch(namespace=NS_W, resource_version=from_rv,
                             timeout=1))
        compare_events("after restart, watch from %s (within the kept "
                       "history) replays the last 2 changes" % from_rv,
                       [(e["type"], e["raw_object"]["metadata"]["name"],
                         e["raw_object"]["metadata"]["resourceVersion"])
                        for e in evs], rec.expected[-2:], after_rv=from_rv)
    except ApiException as e:
        check("after restart, watch from %s (within the kept history) "
              "replays the last 2 changes" % from_rv, False,
              "ApiException %s %s" % (e.status, e.reason))

    # Wait until the old resourceVersion is gone.
    seen = {"events": 0, "other": None}

    def expired():
        w = k8s_watch.Watch()
        try:
            n = 0
            for _ in res.watch(namespace=NS_W, resource_version=rv_old,
                               timeout=1, watcher=w):
                n += 1
            seen["events"] = n
            return False
        except ApiException as e:
            if e.status == 410:
                return True
            seen["other"] = "ApiException %s %s" % (e.status, e.reason)
            return False
    t0 = time.monotonic()
    ok = wait_for(expired, 15, 0.2)
    check("watch from old resourceVersion eventually expires after compaction",
          ok, "after %.2fs; last poll: %d events, %s"
          % (time.monotonic() - t0, seen["events"], seen["other"]))

    # The client's view: Watch().stream raises ApiException(410) (the python
    # client turns the ERROR event into an exception when a timeout is set).
    try:
        evs = list(res.watch(namespace=NS_W, resource_version=rv_old, timeout=2))
        check("Watch on expired resourceVersion raises ApiException 410", False,
              "no exception; %d events: %s" % (len(evs),
                                               [e["type"] for e in evs][:10]))
    except ApiException as e:
        check("Watch on expired resourceVersion raises ApiException 410",
              e.status == 410 and str(e.reason).startswith("Expired"),
              "status=%s reason=%r" % (e.status, e.reason))

    # The same watch, read raw through CustomObjectsApi: one ERROR event whose
    # object is a Status with code 410 and reason Expired.
    try:
        resp = cl.custom.list_namespaced_custom_object(
            "monitoring.coreos.com", "v1", NS_W, "servicemonitors",
            watch=True, resource_version=rv_old, timeout_seconds=2,
            _preload_content=False, _request_timeout=10)
        http_status = resp.status
        lines = [l for l in resp.data.decode("utf-8", "replace").split("\n") if l]
        resp.release_conn()
        evs = [json.loads(l) for l in lines]
        first = evs[0] if evs else {}
        obj = first.get("object") or {}
        check("raw watch on expired resourceVersion: ERROR event, Status "
              "code 410 reason Expired",
              http_status == 200 and first.get("type") == "ERROR"
              and obj.get("kind") == "Status" and obj.get("code") == 410
              and obj.get("reason") == "Expired" and obj.get("status") == "Failure",
              "HTTP %s, events %s" % (http_status, json.dumps(evs)[:500]))
        check("raw watch on expired resourceVersion: no other events",
              len(evs) == 1 and "type" in first, "%d lines" % len(evs))
    except ApiException as e:
        check("raw watch on expired resourceVersion: ERROR event, Status "
              "code 410 reason Expired", False,
              "ApiException %s %s" % (e.status, e.body))

    # Relist: current state with a fresh resourceVersion.
    lst = res.get(namespace=NS_W)
    got = {o["metadata"]["name"]: o["metadata"].get("labels") or {}
           for o in lst.to_dict()["items"]}
    list_rv = lst.metadata.resourceVersion
    check("relist returns the current state", got == state,
          "got %s\n       want %s" % (sorted(got.items()), sorted(state.items())))
    check("relist resourceVersion is fresh",
          list_rv and list_rv != rv_old and int(list_rv) >= int(last_write_rv),
          "list rv %s, old rv %s, last write rv %s" % (list_rv, rv_old,
                                                      last_write_rv))

    # Watch from the relist resourceVersion works and replays nothing.
    w = WatchThread(res, NS_W, list_rv, timeout=60, label="w4")
    w.start()
    mark = len(rec.expected)
    rec.patch("c-10", {"metadata": {"labels": {"step": "3"}}})
    rec.delete("c-11")
    rec.create("c-20", labels={"step": "0"})
    want = rec.expected[mark:]
    wait_for(lambda: len(w.events) >= len(want) or w.ended.is_set(), 10)
    time.sleep(0.3)
    check("watch from relist resourceVersion is open (no error)",
          w.error is None and not w.ended.is_set(), "error=%r" % w.error)
    compare_events("watch from relist resourceVersion delivers new changes only",
                   w.summary(), want, after_rv=list_rv)
    w.stop()
    return server3


# ====================================================================== main

def main():
    info("kubernetes client %s, binary %s" % (kubernetes.__version__, SB_BINARY))
    if not os.access(SB_BINARY, os.X_OK):
        check("signalbox binary exists", False, SB_BINARY)
        return
    server = Server(DATA_DIR, free_port())
    server.start()
    cl = Clients(DATA_DIR)
    for name, part in (("part 1", lambda: part1_crud(cl)),
                       ("part 2", lambda: part2_restart(cl, server)),
                       ("part 3", lambda: part3_compaction(SERVERS[-1]))):
        try:
            part()
        except Exception:
            check("%s ran to completion" % name, False, traceback.format_exc())
            print("server log tail (%s):\n%s" % (SERVERS[-1].log_path,
                                                 SERVERS[-1].log_tail(10)))
        info("elapsed %.1fs" % (time.monotonic() - T_START))
        if not SERVERS[-1].running():
            # A part died with the server down: bring it back for the next.
            try:
                Server(DATA_DIR, server.port).start()
            except Exception:
                check("server restarts after %s" % name, False,
                      traceback.format_exc())
                return
    rc, took = SERVERS[-1].stop(timeout=10)
    check("server stops cleanly on SIGTERM at the end (exit 0)", rc == 0,
          "exit code %s after %.2fs" % (rc, took))


if __name__ == "__main__":
    try:
        main()
    except Exception:
        check("test ran to completion", False, traceback.format_exc())
        for s in SERVERS[-1:]:
            print("server log tail (%s):\n%s" % (s.log_path, s.log_tail()))
    elapsed = time.monotonic() - T_START
    check("whole test within %.0f s" % TOTAL_BUDGET, elapsed < TOTAL_BUDGET,
          "took %.1fs" % elapsed)
    WATCHDOG.cancel()
    print("%d passed, %d failed" % (PASSED, FAILED), flush=True)
    sys.stdout.flush()
    cleanup()
    sys.exit(1 if FAILED else 0)
