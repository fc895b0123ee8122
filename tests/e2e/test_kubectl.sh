#!/usr/bin/env bash
# End-to-end: unmodified kubectl (1.32) against a real `signalbox serve`.
#
# Every check prints one PASS/FAIL line; the script ends with
# "N passed, M failed" and exits non-zero if any check failed.
# Run by CTest as e2e_kubectl (SB_BINARY, SB_TESTDATA set), or by hand:
#   SB_BINARY=build-e2e/signalbox bash tests/e2e/test_kubectl.sh
set -u

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CRDS=$SB_TESTDATA/crds
EX=$CRDS/examples

if ! command -v kubectl >/dev/null 2>&1; then
	echo "kubectl not found"
	echo "0 passed, 1 failed"
	exit 1
fi

SUITE_START=$SECONDS
# shellcheck disable=SC2119 # no extra serve arguments
if ! sb_start; then
	fail "server starts and logs 'ready on'"
	sb_finish
	exit 1
fi
pass "server starts and logs 'ready on'"
T=$SB_WORK/t
mkdir -p "$T"

if [ -s "$KUBECONFIG" ] && grep -q "server: https://127.0.0.1:$SB_PORT" "$KUBECONFIG"; then
	pass "admin.kubeconfig written with the https server address"
else
	fail "admin.kubeconfig written with the https server address"
fi

# ------------------------------------------------------------------------------
echo "## version and discovery"

check "kubectl version shows client and server" \
	--grep '^Client Version: v1\.32' --grep '^Server Version: v1\.' -- kubectl version
check "kubectl version -o json has serverVersion.gitVersion" \
	--fgrep '"serverVersion"' --fgrep '"gitVersion"' -- kubectl version -o json

# ------------------------------------------------------------------------------
echo "## real CRDs (prometheus-operator)"

check "apply the four prometheus-operator CRDs" \
	--lines 4 \
	--fgrep 'customresourcedefinition.apiextensions.k8s.io/podmonitors.monitoring.coreos.com created' \
	--fgrep 'customresourcedefinition.apiextensions.k8s.io/probes.monitoring.coreos.com created' \
	--fgrep 'customresourcedefinition.apiextensions.k8s.io/prometheusrules.monitoring.coreos.com created' \
	--fgrep 'customresourcedefinition.apiextensions.k8s.io/servicemonitors.monitoring.coreos.com created' \
	-- kubectl apply -f "$CRDS/monitoring.coreos.com_podmonitors.yaml" \
	-f "$CRDS/monitoring.coreos.com_probes.yaml" \
	-f "$CRDS/monitoring.coreos.com_prometheusrules.yaml" \
	-f "$CRDS/monitoring.coreos.com_servicemonitors.yaml"

check "wait --for=condition=Established on the four CRDs" \
	--lines 4 --grep 'servicemonitors.monitoring.coreos.com condition met' \
	-- kubectl wait --for=condition=Established --timeout=20s \
	crd/podmonitors.monitoring.coreos.com crd/probes.monitoring.coreos.com \
	crd/prometheusrules.monitoring.coreos.com crd/servicemonitors.monitoring.coreos.com

check "get crd shows the CRDs" --grep '^NAME +CREATED AT$' \
	--grep '^servicemonitors\.monitoring\.coreos\.com +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]+Z$' -- kubectl get crd
check "CRD status has Established=True and NamesAccepted=True" \
	--equals 'True True' \
	-- kubectl get crd servicemonitors.monitoring.coreos.com \
	-o 'jsonpath={.status.conditions[?(@.type=="Established")].status} {.status.conditions[?(@.type=="NamesAccepted")].status}'

check "apply the three examples" \
	--lines 3 \
	--fgrep 'podmonitor.monitoring.coreos.com/example-app created' \
	--fgrep 'servicemonitor.monitoring.coreos.com/example-app created' \
	--fgrep 'prometheusrule.monitoring.coreos.com/prometheus-example-rules created' \
	-- kubectl apply -f "$EX/example-app-pod-monitor.yaml" \
	-f "$EX/example-app-service-monitor.yaml" -f "$EX/prometheus-example-rules.yaml"

check "get servicemonitors,podmonitors,prometheusrules lists the examples" \
	--grep '^servicemonitor\.monitoring\.coreos\.com/example-app +[0-9]+s' \
	--grep '^podmonitor\.monitoring\.coreos\.com/example-app +[0-9]+s' \
	--grep '^prometheusrule\.monitoring\.coreos\.com/prometheus-example-rules +[0-9]+s' \
	-- kubectl get servicemonitors,podmonitors,prometheusrules

check "get by short name (smon)" \
	--grep '^example-app ' -- kubectl get smon
check "get by category prometheus-operator lists all three kinds" \
	--fgrep 'servicemonitor.monitoring.coreos.com/example-app' \
	--fgrep 'podmonitor.monitoring.coreos.com/example-app' \
	--fgrep 'prometheusrule.monitoring.coreos.com/prometheus-example-rules' \
	-- kubectl get prometheus-operator

check "api-versions lists monitoring.coreos.com/v1" \
	--grep '^monitoring\.coreos\.com/v1$' --grep '^apiextensions\.k8s\.io/v1$' --grep '^v1$' \
	-- kubectl api-versions
check "api-resources lists the CRD group's resources" \
	--grep '^servicemonitors +smon +monitoring\.coreos\.com/v1 +true +ServiceMonitor' \
	--grep '^prometheusrules +.*monitoring\.coreos\.com/v1 +true +PrometheusRule' \
	-- kubectl api-resources
check "api-resources --api-group=monitoring.coreos.com lists exactly 4" \
	--lines 5 --grep '^probes ' -- kubectl api-resources --api-group=monitoring.coreos.com

# Defaulting from the CRD schema: relabelings[].action defaults to "replace".
cat >"$T/sm-default.yaml" <<'EOF'
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: defaulted
spec:
  selector:
    matchLabels:
      app: x
  endpoints:
  - port: web
    relabelings:
    - sourceLabels: [__meta_x]
      targetLabel: dest
EOF
kubectl apply -f "$T/sm-default.yaml" >/dev/null 2>&1
check "schema default applied (relabelings[0].action=replace)" \
	--equals 'replace' \
	-- kubectl get servicemonitor defaulted -o 'jsonpath={.spec.endpoints[0].relabelings[0].action}'

# Pruning: an unknown field sent with --validate=false is dropped.
sed 's/^  - port: web$/  - port: web\n    bogusField: 1/' "$EX/example-app-service-monitor.yaml" |
	sed 's/name: example-app/name: pruned/' >"$T/sm-prune.yaml"
kubectl apply --validate=false -f "$T/sm-prune.yaml" >/dev/null 2>&1
check "unknown field pruned with --validate=false" \
	--rc 0 --fgrep '"port":"web"' --no-fgrep 'bogusField' \
	-- kubectl get servicemonitor pruned -o 'jsonpath={.spec.endpoints[0]}'

# ------------------------------------------------------------------------------
echo "## broken variants of the examples are refused (422 with field path)"

# refused NAME FILE PATTERN...: kubectl apply must fail, print each fixed
# string, and the object must not exist afterwards.
refused() {
	local name=$1 file=$2 kind=$3 obj=$4
	shift 4
	local -a opts=()
	local s
	for s in "$@"; do
		opts+=(--fgrep "$s")
	done
	check "$name" --rc 1 "${opts[@]}" -- kubectl apply -f "$file"
	check "$name: object not stored" --rc 1 \
		--fgrep "Error from server (NotFound)" -- kubectl get "$kind" "$obj"
}

# 1. wrong type: port must be a string
sed -e 's/name: example-app/name: bad-type/' -e 's/- port: web/- port: 8080/' \
	"$EX/example-app-service-monitor.yaml" >"$T/bad-type.yaml"
refused "wrong type (spec.endpoints[0].port integer)" "$T/bad-type.yaml" servicemonitor bad-type \
	'The ServiceMonitor "bad-type" is invalid' \
	'spec.endpoints[0].port: Invalid value: "integer": spec.endpoints[0].port in body must be of type string: "integer"'

# 2. bad enum: scheme
sed -e 's/name: example-app/name: bad-enum/' -e 's/- port: web/- port: web\n    scheme: ftp/' \
	"$EX/example-app-service-monitor.yaml" >"$T/bad-enum.yaml"
refused "bad enum (spec.endpoints[0].scheme: Unsupported value)" "$T/bad-enum.yaml" servicemonitor bad-enum \
	'The ServiceMonitor "bad-enum" is invalid' \
	'spec.endpoints[0].scheme: Unsupported value: "ftp": supported values: "http", "https", "HTTP", "HTTPS"'

# 3. pattern mismatch: for: 5x
sed -e 's/name: prometheus-example-rules/name: bad-pattern/' \
	-e 's/expr: vector(1)/expr: vector(1)\n      for: 5x/' \
	"$EX/prometheus-example-rules.yaml" >"$T/bad-pattern.yaml"
refused "pattern mismatch (spec.groups[0].rules[0].for: 5x)" "$T/bad-pattern.yaml" prometheusrule bad-pattern \
	'The PrometheusRule "bad-pattern" is invalid' \
	'spec.groups[0].rules[0].for: Invalid value: "5x": spec.groups[0].rules[0].for in body should match '"'"'^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'"'"

# 4. missing required field: rules[].expr
sed -e 's/name: prometheus-example-rules/name: bad-required/' -e '/expr: vector(1)/d' \
	"$EX/prometheus-example-rules.yaml" >"$T/bad-required.yaml"
refused "missing required field (spec.groups[0].rules[0].expr)" "$T/bad-required.yaml" prometheusrule bad-required \
	'The PrometheusRule "bad-required" is invalid' \
	'spec.groups[0].rules[0].expr: Required value'

# 5. too-short string: group name minLength 1
sed -e 's/name: prometheus-example-rules/name: bad-short/' -e 's|- name: ./example.rules|- name: ""|' \
	"$EX/prometheus-example-rules.yaml" >"$T/bad-short.yaml"
refused "too-short string (spec.groups[0].name minLength 1)" "$T/bad-short.yaml" prometheusrule bad-short \
	'The PrometheusRule "bad-short" is invalid' \
	'spec.groups[0].name: Invalid value: "": spec.groups[0].name in body should be at least 1 chars long'

# 6. below minimum: PodMonitor labelLimit -1
sed -e 's/name: example-app/name: bad-minimum/' -e 's/^spec:$/spec:\n  labelLimit: -1/' \
	"$EX/example-app-pod-monitor.yaml" >"$T/bad-minimum.yaml"
refused "below minimum (spec.labelLimit: -1)" "$T/bad-minimum.yaml" podmonitor bad-minimum \
	'The PodMonitor "bad-minimum" is invalid' \
	'spec.labelLimit: Invalid value: -1: spec.labelLimit in body should be greater than or equal to 0'

# 7. missing required top-level field: spec
cat >"$T/bad-nospec.yaml" <<'EOF'
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: bad-nospec
EOF
refused "missing required field (spec)" "$T/bad-nospec.yaml" prometheusrule bad-nospec \
	'The PrometheusRule "bad-nospec" is invalid' 'spec: Required value'

# 8. wrong type deeper: selector.matchLabels must be an object
sed -e 's/name: example-app/name: bad-object/' -e 's/^    matchLabels:$/    matchLabels: notamap/' \
	-e '/^      app: example-app$/d' \
	"$EX/example-app-pod-monitor.yaml" >"$T/bad-object.yaml"
refused "wrong type (spec.selector.matchLabels string)" "$T/bad-object.yaml" podmonitor bad-object \
	'The PodMonitor "bad-object" is invalid' \
	'spec.selector.matchLabels: Invalid value: "string": spec.selector.matchLabels in body must be of type object: "string"'

# 9. unknown field with --validate=strict
sed -e 's/name: example-app/name: bad-unknown/' -e 's/- port: web/- port: web\n    bogus: 1/' \
	"$EX/example-app-service-monitor.yaml" >"$T/bad-unknown.yaml"
check "unknown field under --validate=strict" --rc 1 \
	--fgrep 'Error from server (BadRequest)' \
	--fgrep 'unknown field "spec.endpoints[0].bogus"' \
	-- kubectl apply --validate=strict -f "$T/bad-unknown.yaml"
check "unknown field under --validate=strict: object not stored" --rc 1 \
	--fgrep 'Error from server (NotFound)' -- kubectl get servicemonitor bad-unknown

# 10. several errors are all reported
sed -e 's/name: example-app/name: bad-many/' -e 's/- port: web/- port: 8080\n    scheme: ftp/' \
	"$EX/example-app-service-monitor.yaml" >"$T/bad-many.yaml"
check "two errors in one object are both reported" --rc 1 \
	--fgrep 'spec.endpoints[0].port: Invalid value' \
	--fgrep 'spec.endpoints[0].scheme: Unsupported value' \
	-- kubectl apply -f "$T/bad-many.yaml"

# ------------------------------------------------------------------------------
echo "## errors as kubectl prints them"

check "404 message" --rc 1 \
	--equals 'Error from server (NotFound): servicemonitors.monitoring.coreos.com "nope" not found' \
	-- kubectl get servicemonitors nope
check "404 on delete" --rc 1 \
	--equals 'Error from server (NotFound): servicemonitors.monitoring.coreos.com "nope" not found' \
	-- kubectl delete servicemonitor nope
check "unknown resource type" --rc 1 \
	--fgrep 'error: the server doesn'"'"'t have a resource type "nosuchthings"' \
	-- kubectl get nosuchthings

kubectl get servicemonitor example-app -o yaml >"$T/stale.yaml" 2>&1
kubectl label servicemonitor example-app touched=yes >/dev/null 2>&1
check "replace with a stale resourceVersion is a Conflict" --rc 1 \
	--equals "Error from server (Conflict): error when replacing \"$T/stale.yaml\": Operation cannot be fulfilled on servicemonitors.monitoring.coreos.com \"example-app\": the object has been modified; please apply your changes to the latest version and try again" \
	-- kubectl replace -f "$T/stale.yaml"
check "create of an existing object is AlreadyExists" --rc 1 \
	--equals "Error from server (AlreadyExists): error when creating \"$EX/example-app-service-monitor.yaml\": servicemonitors.monitoring.coreos.com \"example-app\" already exists" \
	-- kubectl create -f "$EX/example-app-service-monitor.yaml"
check "strategic merge patch on a custom resource is refused (415)" --rc 1 \
	--fgrep 'application/strategic-merge-patch+json is not supported by monitoring.coreos.com/v1, Kind=ServiceMonitor' \
	-- kubectl patch servicemonitor example-app --type=strategic -p '{"metadata":{"labels":{"x":"y"}}}'
check "422 from a merge patch that breaks the schema" --rc 1 \
	--fgrep 'The ServiceMonitor "example-app" is invalid' \
	--fgrep 'spec.endpoints[0].scheme: Unsupported value: "gopher"' \
	-- kubectl patch servicemonitor example-app --type=json -p '[{"op":"add","path":"/spec/endpoints/0/scheme","value":"gopher"}]'

# ------------------------------------------------------------------------------
echo "## get output formats, describe"

check "get -o json" --grep '"kind": "ServiceMonitor"' --grep '"name": "example-app"' \
	--grep '"resourceVersion": "[0-9]+"' --grep '"uid": "' --grep '"creationTimestamp": "' \
	-- kubectl get servicemonitor example-app -o json
if command -v python3 >/dev/null 2>&1; then
	check "get -o json is valid JSON" --equals 'ServiceMonitor example-app web' \
		-- bash -c "kubectl get servicemonitor example-app -o json | python3 -c 'import json,sys; o=json.load(sys.stdin); print(o[\"kind\"], o[\"metadata\"][\"name\"], o[\"spec\"][\"endpoints\"][0][\"port\"])'"
fi
check "get (list) -o json is a List" --grep '"kind": "List"' --grep '"items": \[' \
	-- kubectl get servicemonitors -o json
check "get -o yaml" --grep '^kind: ServiceMonitor$' --grep '^apiVersion: monitoring.coreos.com/v1$' \
	--grep '^  name: example-app$' --grep '^  - port: web$' \
	-- kubectl get servicemonitor example-app -o yaml
check "get -o wide" --grep '^NAME +AGE$' --grep '^example-app +[0-9]+s$' \
	-- kubectl get servicemonitor example-app -o wide
check "get -o jsonpath" --equals 'example-app/web/frontend' \
	-- kubectl get servicemonitor example-app -o 'jsonpath={.metadata.name}/{.spec.endpoints[0].port}/{.metadata.labels.team}'
check "get -o jsonpath over a list with range" --equals 'defaulted example-app pruned ' \
	-- kubectl get servicemonitors -o 'jsonpath={range .items[*]}{.metadata.name} {end}'
check "get -o name" --equals 'servicemonitor.monitoring.coreos.com/example-app' \
	-- kubectl get servicemonitor example-app -o name
check "get -o custom-columns" --grep '^N +PORT$' --grep '^example-app +web$' \
	-- kubectl get servicemonitor example-app -o 'custom-columns=N:.metadata.name,PORT:.spec.endpoints[0].port'
check "get --show-labels" --grep 'team=frontend' -- kubectl get servicemonitor example-app --show-labels
check "describe" --grep '^Name: +example-app$' --grep '^Namespace: +default$' \
	--grep '^Kind: +ServiceMonitor$' --grep '^API Version: +monitoring.coreos.com/v1$' \
	--grep 'team=frontend' --grep 'Port: +web' \
	-- kubectl describe servicemonitor example-app

# ------------------------------------------------------------------------------
echo "## apply idempotence and diff"

kubectl get servicemonitor example-app -o yaml >"$T/fresh.yaml" 2>&1
check "replace with the current resourceVersion" \
	--equals 'servicemonitor.monitoring.coreos.com/example-app replaced' -- kubectl replace -f "$T/fresh.yaml"
check "apply again says unchanged" \
	--equals 'podmonitor.monitoring.coreos.com/example-app unchanged' \
	-- kubectl apply -f "$EX/example-app-pod-monitor.yaml"
check "apply CRD again says unchanged" \
	--equals 'customresourcedefinition.apiextensions.k8s.io/servicemonitors.monitoring.coreos.com unchanged' \
	-- kubectl apply -f "$CRDS/monitoring.coreos.com_servicemonitors.yaml"
check "diff of an unchanged file exits 0 with no output" --rc 0 --equals '' \
	-- kubectl diff -f "$EX/example-app-pod-monitor.yaml"
sed 's/- port: web/- port: metrics/' "$EX/example-app-pod-monitor.yaml" >"$T/pm-changed.yaml"
check "diff of a changed file exits 1 and shows the change" --rc 1 \
	--grep '^-  - port: web$' --grep '^\+  - port: metrics$' \
	-- kubectl diff -f "$T/pm-changed.yaml"
check "diff did not change the object" --equals 'web' \
	-- kubectl get podmonitor example-app -o 'jsonpath={.spec.podMetricsEndpoints[0].port}'
check "apply of the changed file says configured" \
	--equals 'podmonitor.monitoring.coreos.com/example-app configured' \
	-- kubectl apply -f "$T/pm-changed.yaml"
check "apply changed the object" --equals 'metrics' \
	-- kubectl get podmonitor example-app -o 'jsonpath={.spec.podMetricsEndpoints[0].port}'

# ------------------------------------------------------------------------------
echo "## edit, patch, label, annotate"

cat >"$T/editor.sh" <<'EOF'
#!/bin/sh
# kubectl edit's EDITOR: change the endpoint's port from web to edited.
sed -i 's/- port: web$/- port: edited/' "$1"
EOF
chmod +x "$T/editor.sh"
check "edit with an EDITOR script" \
	--equals 'servicemonitor.monitoring.coreos.com/example-app edited' \
	-- env EDITOR="$T/editor.sh" KUBE_EDITOR="$T/editor.sh" kubectl edit servicemonitor example-app
check "edit changed the object" --equals 'edited' \
	-- kubectl get servicemonitor example-app -o 'jsonpath={.spec.endpoints[0].port}'

check "patch --type=merge" --equals 'servicemonitor.monitoring.coreos.com/example-app patched' \
	-- kubectl patch servicemonitor example-app --type=merge -p '{"spec":{"jobLabel":"job-merge","endpoints":[{"port":"merged","interval":"30s"}]}}'
check "merge patch result" --equals 'job-merge merged 30s' \
	-- kubectl get servicemonitor example-app -o 'jsonpath={.spec.jobLabel} {.spec.endpoints[0].port} {.spec.endpoints[0].interval}'
check "patch --type=merge with null removes a field" \
	--equals 'servicemonitor.monitoring.coreos.com/example-app patched' \
	-- kubectl patch servicemonitor example-app --type=merge -p '{"spec":{"jobLabel":null}}'
check "merge patch null removed jobLabel" --equals '' \
	-- kubectl get servicemonitor example-app -o 'jsonpath={.spec.jobLabel}'
check "patch --type=json" --equals 'servicemonitor.monitoring.coreos.com/example-app patched' \
	-- kubectl patch servicemonitor example-app --type=json \
	-p '[{"op":"replace","path":"/spec/endpoints/0/port","value":"jsonport"},{"op":"add","path":"/spec/endpoints/-","value":{"port":"second"}}]'
check "json patch result" --equals 'jsonport second' \
	-- kubectl get servicemonitor example-app -o 'jsonpath={.spec.endpoints[*].port}'
check "json patch with a failing test op is refused" --rc 1 \
	--grep '^The request is invalid' \
	-- kubectl patch servicemonitor example-app --type=json -p '[{"op":"test","path":"/spec/endpoints/0/port","value":"nope"}]'
check "patch that changes nothing says (no change)" \
	--equals 'servicemonitor.monitoring.coreos.com/example-app patched (no change)' \
	-- kubectl patch servicemonitor example-app --type=merge -p '{"metadata":{"labels":{"team":"frontend"}}}'
check "json patch of a missing path is refused" --rc 1 --grep '^The request is invalid' \
	-- kubectl patch servicemonitor example-app --type=json -p '[{"op":"remove","path":"/spec/nothere"}]'

check "label" --equals 'servicemonitor.monitoring.coreos.com/example-app labeled' \
	-- kubectl label servicemonitor example-app env=prod
check "label is visible to a selector" --equals 'servicemonitor.monitoring.coreos.com/example-app' \
	-- kubectl get servicemonitors -l env=prod -o name
check "label without --overwrite refuses to change a value" --rc 1 \
	--fgrep "'env' already has a value (prod), and --overwrite is false" \
	-- kubectl label servicemonitor example-app env=dev
check "label --overwrite" --equals 'servicemonitor.monitoring.coreos.com/example-app labeled' \
	-- kubectl label servicemonitor example-app env=dev --overwrite
check "label removal (env-)" --equals 'servicemonitor.monitoring.coreos.com/example-app unlabeled' \
	-- kubectl label servicemonitor example-app env-
check "label removed" --equals '' \
	-- kubectl get servicemonitor example-app -o 'jsonpath={.metadata.labels.env}'
check "annotate" --equals 'servicemonitor.monitoring.coreos.com/example-app annotated' \
	-- kubectl annotate servicemonitor example-app e2e.signalbox.dev/note='hello world'
check "annotation stored" --equals 'hello world' \
	-- kubectl get servicemonitor example-app -o 'jsonpath={.metadata.annotations.e2e\.signalbox\.dev/note}'
check "annotate removal" --equals 'servicemonitor.monitoring.coreos.com/example-app annotated' \
	-- kubectl annotate servicemonitor example-app e2e.signalbox.dev/note-
check "annotation removed" --equals '' \
	-- kubectl get servicemonitor example-app -o 'jsonpath={.metadata.annotations.e2e\.signalbox\.dev/note}'

# ------------------------------------------------------------------------------
echo "## explain"

check "explain a CRD field: description and enum from the schema" \
	--grep '^KIND: +ServiceMonitor$' --grep '^VERSION: +v1$' --grep '^FIELD: +scheme <string>$' \
	--fgrep 'scheme defines the HTTP scheme to use when scraping' \
	--grep '^ENUM:$' --grep '^ +https$' --grep '^ +HTTPS$' \
	-- kubectl explain servicemonitors.spec.endpoints.scheme
check "explain a CRD object lists its fields" \
	--grep '^KIND: +PrometheusRule$' --grep '^GROUP: +monitoring.coreos.com$' \
	--grep '^  spec\s+<Object> -required-$' \
	-- kubectl explain prometheusrules
check "explain --recursive" --grep '^ +for\s+<string>$' --grep '^ +expr\s+<(Object|IntOrString)> -required-$' \
	-- kubectl explain prometheusrules.spec.groups --recursive

# ------------------------------------------------------------------------------
echo "## delete and wait"

check "delete" --equals 'prometheusrule.monitoring.coreos.com "prometheus-example-rules" deleted' \
	-- kubectl delete prometheusrule prometheus-example-rules
check "deleted object is gone" --rc 1 \
	--equals 'Error from server (NotFound): prometheusrules.monitoring.coreos.com "prometheus-example-rules" not found' \
	-- kubectl get prometheusrule prometheus-example-rules
kubectl apply -f "$EX/prometheus-example-rules.yaml" >/dev/null 2>&1
# The object has no finalizer, so it may be gone before wait starts: then
# kubectl wait --for=delete prints nothing and exits 0.
check "delete --wait=false then wait --for=delete" --rc 0 \
	--grep '^(prometheusrule.monitoring.coreos.com/prometheus-example-rules condition met)?$' \
	-- bash -c "kubectl delete prometheusrule prometheus-example-rules --wait=false >/dev/null &&
		kubectl wait --for=delete prometheusrule/prometheus-example-rules --timeout=15s"
check "delete --ignore-not-found on a missing object" --rc 0 --equals '' \
	-- kubectl delete prometheusrule prometheus-example-rules --ignore-not-found

# ------------------------------------------------------------------------------
echo "## a CRD of our own: printer columns, subresources"

cat >"$T/widget-crd.yaml" <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.e2e.signalbox.dev
spec:
  group: e2e.signalbox.dev
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    listKind: WidgetList
    shortNames: [wd]
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        description: A Widget is a thing the e2e suite plays with.
        properties:
          spec:
            type: object
            description: Spec is what the user wants.
            properties:
              replicas:
                type: integer
                minimum: 0
                description: Number of copies of the widget.
              size:
                type: string
                enum: [small, medium, large]
                default: small
                description: How big each copy is.
              color:
                type: string
                maxLength: 10
          status:
            type: object
            properties:
              replicas:
                type: integer
              selector:
                type: string
              conditions:
                type: array
                items:
                  type: object
                  required: [type, status]
                  properties:
                    type:
                      type: string
                    status:
                      type: string
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    additionalPrinterColumns:
    - name: Ready
      type: string
      jsonPath: .status.conditions[?(@.type=="Ready")].status
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Size
      type: string
      priority: 1
      jsonPath: .spec.size
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
EOF
check "apply own CRD" --equals 'customresourcedefinition.apiextensions.k8s.io/widgets.e2e.signalbox.dev created' \
	-- kubectl apply -f "$T/widget-crd.yaml"
check "wait --for=condition=Established on own CRD" \
	--equals 'customresourcedefinition.apiextensions.k8s.io/widgets.e2e.signalbox.dev condition met' \
	-- kubectl wait --for=condition=Established crd/widgets.e2e.signalbox.dev --timeout=20s
check "api-resources lists own CRD" --grep '^widgets +wd +e2e\.signalbox\.dev/v1 +true +Widget$' \
	-- kubectl api-resources --api-group=e2e.signalbox.dev
check "api-versions lists own CRD group" --grep '^e2e\.signalbox\.dev/v1$' -- kubectl api-versions

widget() { # name replicas [labels-yaml-line...]
	local name=$1 replicas=$2
	shift 2
	printf 'apiVersion: e2e.signalbox.dev/v1\nkind: Widget\nmetadata:\n  name: %s\n' "$name"
	if [ $# -gt 0 ]; then
		printf '  labels:\n'
		local l
		for l in "$@"; do
			printf '    %s\n' "$l"
		done
	fi
	printf 'spec:\n  replicas: %s\n' "$replicas"
}

# w1 carries a status in its manifest: with the status subresource, create
# and update through the main resource ignore it.
{ widget w1 1; printf 'status:\n  replicas: 99\n'; } >"$T/w1.yaml"
check "create widget w1 (apply)" --equals 'widget.e2e.signalbox.dev/w1 created' -- kubectl apply -f "$T/w1.yaml"
check "status in the manifest ignored on create" --equals '' \
	-- kubectl get widget w1 -o 'jsonpath={.status}'
check "generation starts at 1" --equals '1' -- kubectl get widget w1 -o 'jsonpath={.metadata.generation}'
check "printer columns" --grep '^NAME +READY +REPLICAS +AGE$' --grep '^w1 +1 +[0-9]+s$' \
	--no-grep 'SIZE' -- kubectl get widgets
check "status patch (--subresource=status)" \
	--equals 'widget.e2e.signalbox.dev/w1 patched' \
	-- kubectl patch widget w1 --subresource=status --type=merge \
	-p '{"status":{"replicas":1,"conditions":[{"type":"Synced","status":"False"},{"type":"Ready","status":"True"}]}}'
check "JSONPath filter column shows Ready=True" --grep '^w1 +True +1 +[0-9]+s$' -- kubectl get widgets
check "-o wide adds the priority=1 column" --grep '^NAME +READY +REPLICAS +SIZE +AGE$' \
	--grep '^w1 +True +1 +small +[0-9]+s$' -- kubectl get widgets -o wide
check "status patch did not bump generation" --equals '1' \
	-- kubectl get widget w1 -o 'jsonpath={.metadata.generation}'
check "status subresource ignores spec changes" \
	--rc 0 -- kubectl patch widget w1 --subresource=status --type=merge -p '{"spec":{"replicas":7}}'
check "spec unchanged after a status-subresource patch of spec" --equals '1' \
	-- kubectl get widget w1 -o 'jsonpath={.spec.replicas}'
check "get --subresource=status" --grep '^w1 ' -- kubectl get widget w1 --subresource=status

sed 's/replicas: 1$/replicas: 2/' "$T/w1.yaml" | sed 's/replicas: 99/replicas: 42/' >"$T/w1b.yaml"
check "apply of spec (manifest with a different status)" \
	--equals 'widget.e2e.signalbox.dev/w1 configured' -- kubectl apply -f "$T/w1b.yaml"
check "apply did not touch status; spec changed" --equals '2 1 True' \
	-- kubectl get widget w1 -o 'jsonpath={.spec.replicas} {.status.replicas} {.status.conditions[?(@.type=="Ready")].status}'
check "main-resource patch of status is ignored" --rc 0 \
	-- kubectl patch widget w1 --type=merge -p '{"status":{"replicas":5}}'
check "status still 1 after a main-resource patch" --equals '1' \
	-- kubectl get widget w1 -o 'jsonpath={.status.replicas}'
check "generation bumped by the spec change" --equals '2' \
	-- kubectl get widget w1 -o 'jsonpath={.metadata.generation}'
kubectl label widget w1 color=blue >/dev/null 2>&1
kubectl annotate widget w1 note=x >/dev/null 2>&1
check "generation not bumped by label/annotation changes" --equals '2 blue' \
	-- kubectl get widget w1 -o 'jsonpath={.metadata.generation} {.metadata.labels.color}'

check "scale --replicas=3" --equals 'widget.e2e.signalbox.dev/w1 scaled' \
	-- kubectl scale widget w1 --replicas=3
check "scale changed spec.replicas" --equals '3' -- kubectl get widget w1 -o 'jsonpath={.spec.replicas}'
check "scale bumped generation" --equals '3' -- kubectl get widget w1 -o 'jsonpath={.metadata.generation}'
check "get --subresource=scale" --equals 'Scale 3 1' \
	-- kubectl get widget w1 --subresource=scale -o 'jsonpath={.kind} {.spec.replicas} {.status.replicas}'
check "scale --current-replicas mismatch is refused" --rc 1 \
	--fgrep 'Expected replicas to be 2, was 3' \
	-- kubectl scale widget w1 --replicas=4 --current-replicas=2

check "422 on own CRD (enum)" --rc 1 \
	--equals 'The Widget "w1" is invalid: spec.size: Unsupported value: "huge": supported values: "small", "medium", "large"' \
	-- kubectl patch widget w1 --type=merge -p '{"spec":{"size":"huge"}}'
check "422 on own CRD (maxLength)" --rc 1 \
	--fgrep 'The Widget "w1" is invalid: spec.color: Too long: ' \
	-- kubectl patch widget w1 --type=merge -p '{"spec":{"color":"ultraviolet!"}}'
check "422 on own CRD (minimum) through scale" --rc 1 \
	--fgrep 'spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0' \
	-- kubectl patch widget w1 --type=merge -p '{"spec":{"replicas":-1}}'

check "explain own CRD field: description and enum" \
	--grep '^FIELD: +size <string>$' --fgrep 'How big each copy is.' \
	--grep '^ENUM:$' --grep '^ +small$' --grep '^ +large$' \
	-- kubectl explain widgets.spec.size
check "explain own CRD root" --fgrep 'A Widget is a thing the e2e suite plays with.' \
	-- kubectl explain widgets

# ------------------------------------------------------------------------------
echo "## get -w"

widget wa0 1 'watch: "yes"' >"$T/wa0.yaml"
widget wa1 1 'watch: "yes"' >"$T/wa1.yaml"
kubectl apply -f "$T/wa0.yaml" >/dev/null 2>&1
W1=$T/watch-events.out
W2=$T/watch-plain.out
timeout -k 2 25 kubectl get widgets -l watch=yes -w --output-watch-events >"$W1" 2>&1 &
WPID1=$!
sb_bg "$WPID1"
timeout -k 2 25 kubectl get widgets -l watch=yes -w -o name >"$W2" 2>&1 &
WPID2=$!
sb_bg "$WPID2"
if wait_until 10 grep -q 'wa0' "$W1" && wait_until 10 grep -q 'wa0' "$W2"; then
	sleep 0.3
	kubectl apply -f "$T/wa1.yaml" >/dev/null 2>&1
	kubectl patch widget wa0 --type=merge -p '{"spec":{"replicas":2}}' >/dev/null 2>&1
	kubectl delete widget wa1 --wait=false >/dev/null 2>&1
	wait_until 10 grep -q '^DELETED' "$W1"
	wait_until 10 test "$(grep -c . "$W2")" -ge 4
	sleep 0.3
fi
kill -TERM "$WPID1" "$WPID2" 2>/dev/null
wait "$WPID1" "$WPID2" 2>/dev/null
check "get -w --output-watch-events prints the CRD's columns once" \
	--grep '^EVENT +NAME +READY +REPLICAS +AGE$' --lines 1 \
	-- bash -c "grep '^EVENT' '$W1'"
check "get -w --output-watch-events prints ADDED, MODIFIED, DELETED in order" \
	--equals "$(printf 'ADDED wa0\nADDED wa1\nMODIFIED wa0\nDELETED wa1')" \
	-- bash -c "awk 'NR>1 {print \$1, \$2}' '$W1'"
check "get -w shows the new replicas in the MODIFIED row" --grep '^MODIFIED +wa0 +2 ' -- cat "$W1"
check "get -w -o name prints a line per event" \
	--equals "$(printf 'widget.e2e.signalbox.dev/wa0\nwidget.e2e.signalbox.dev/wa1\nwidget.e2e.signalbox.dev/wa0\nwidget.e2e.signalbox.dev/wa1')" \
	-- cat "$W2"

# ------------------------------------------------------------------------------
echo "## finalizers"

cat >"$T/wfin.yaml" <<'EOF'
apiVersion: e2e.signalbox.dev/v1
kind: Widget
metadata:
  name: wfin
  finalizers:
  - e2e.signalbox.dev/hold
spec:
  replicas: 1
EOF
kubectl apply -f "$T/wfin.yaml" >/dev/null 2>&1
check "delete of an object with a finalizer returns at once (--wait=false)" \
	--equals 'widget.e2e.signalbox.dev "wfin" deleted' -- kubectl delete widget wfin --wait=false
check "object with a finalizer still exists, with deletionTimestamp" \
	--grep '^wfin [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]+Z e2e.signalbox.dev/hold$' \
	-- kubectl get widget wfin -o 'jsonpath={.metadata.name} {.metadata.deletionTimestamp} {.metadata.finalizers[*]}'
check "marking for deletion bumps generation, sets deletionGracePeriodSeconds=0" --equals '2 0' \
	-- kubectl get widget wfin -o 'jsonpath={.metadata.generation} {.metadata.deletionGracePeriodSeconds}'
check "second delete leaves it terminating" \
	--equals 'widget.e2e.signalbox.dev "wfin" deleted' -- kubectl delete widget wfin --wait=false
timeout -k 2 25 kubectl wait --for=delete widget/wfin --timeout=20s >"$T/wait-del.out" 2>&1 &
WPID3=$!
sb_bg "$WPID3"
sleep 0.5
if kill -0 "$WPID3" 2>/dev/null; then
	pass "wait --for=delete blocks while the finalizer is there"
else
	fail "wait --for=delete blocks while the finalizer is there" "it exited early: $(cat "$T/wait-del.out")"
fi
check "remove the finalizer with a JSON patch" --equals 'widget.e2e.signalbox.dev/wfin patched' \
	-- kubectl patch widget wfin --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]'
wait "$WPID3"
WRC=$?
OUT=$(cat "$T/wait-del.out") RC=$WRC
if [ "$WRC" = 0 ] && [ "$OUT" = 'widget.e2e.signalbox.dev/wfin condition met' ]; then
	pass "wait --for=delete returns once the finalizer is removed"
else
	SB_LAST_CMD="kubectl wait --for=delete widget/wfin --timeout=20s" \
		fail "wait --for=delete returns once the finalizer is removed"
fi
check "object is gone after the finalizer is removed" --rc 1 \
	--equals 'Error from server (NotFound): widgets.e2e.signalbox.dev "wfin" not found' \
	-- kubectl get widget wfin

# ------------------------------------------------------------------------------
echo "## generateName, dry run"

cat >"$T/wgen.yaml" <<'EOF'
apiVersion: e2e.signalbox.dev/v1
kind: Widget
metadata:
  generateName: gen-
  labels:
    gen: "yes"
spec:
  replicas: 1
EOF
check "create -f with generateName" --grep '^widget\.e2e\.signalbox\.dev/gen-[a-z0-9]{5} created$' \
	-- kubectl create -f "$T/wgen.yaml"
check "create -f with generateName again gives another name" \
	--grep '^widget\.e2e\.signalbox\.dev/gen-[a-z0-9]{5} created$' -- kubectl create -f "$T/wgen.yaml"
check "two generated objects exist" --lines 2 --grep '^widget.e2e.signalbox.dev/gen-' \
	-- kubectl get widgets -l gen=yes -o name

widget wdry 1 >"$T/wdry.yaml"
check "create --dry-run=server" --equals 'widget.e2e.signalbox.dev/wdry created (server dry run)' \
	-- kubectl create --dry-run=server -f "$T/wdry.yaml"
check "apply --dry-run=server" --equals 'widget.e2e.signalbox.dev/wdry created (server dry run)' \
	-- kubectl apply --dry-run=server -f "$T/wdry.yaml"
check "dry run did not store the object" --rc 1 \
	--equals 'Error from server (NotFound): widgets.e2e.signalbox.dev "wdry" not found' \
	-- kubectl get widget wdry
check "dry run -o yaml shows server defaults" --grep '^  size: small$' --grep '^  uid: ' \
	-- kubectl create --dry-run=server -f "$T/wdry.yaml" -o yaml
check "dry run of an invalid object still validates" --rc 1 \
	--fgrep 'spec.replicas: Invalid value: "string"' \
	-- bash -c "sed 's/replicas: 1/replicas: one/' '$T/wdry.yaml' | kubectl create --dry-run=server -f -"
widget wdel 1 >"$T/wdel.yaml"
kubectl apply -f "$T/wdel.yaml" >/dev/null 2>&1
check "delete --dry-run=server" \
	--equals 'widget.e2e.signalbox.dev "wdel" deleted (server dry run)' -- kubectl delete widget wdel --dry-run=server
check "object still there after delete --dry-run=server" --equals 'wdel' \
	-- kubectl get widget wdel -o 'jsonpath={.metadata.name}'
check "patch --dry-run=server returns the patched object" --equals '9' \
	-- kubectl patch widget w1 --dry-run=server --type=merge -p '{"spec":{"replicas":9}}' -o 'jsonpath={.spec.replicas}'
check "patch --dry-run=server does not store" --equals '3 3' \
	-- kubectl get widget w1 -o 'jsonpath={.spec.replicas} {.metadata.generation}'

# ------------------------------------------------------------------------------
echo "## selectors, chunking, deletecollection"

{
	widget sel-x 1 'grp: sel' 'a: "x"'; echo ---
	widget sel-y 1 'grp: sel' 'a: "y"'; echo ---
	widget sel-z 1 'grp: sel' 'a: "z"'; echo ---
	widget sel-none 1 'grp: sel'
} >"$T/sel.yaml"
check "create 4 labelled widgets" --lines 4 -- kubectl apply -f "$T/sel.yaml"
check "-l 'a in (x,y)'" --equals "$(printf 'widget.e2e.signalbox.dev/sel-x\nwidget.e2e.signalbox.dev/sel-y')" \
	-- kubectl get widgets -l 'grp=sel,a in (x,y)' -o name
check "-l '!a'" --equals 'widget.e2e.signalbox.dev/sel-none' \
	-- kubectl get widgets -l 'grp=sel,!a' -o name
check "-l a!=x (includes objects without a)" \
	--equals "$(printf 'widget.e2e.signalbox.dev/sel-none\nwidget.e2e.signalbox.dev/sel-y\nwidget.e2e.signalbox.dev/sel-z')" \
	-- kubectl get widgets -l 'grp=sel,a!=x' -o name
check "-l 'a notin (x,z)'" \
	--equals "$(printf 'widget.e2e.signalbox.dev/sel-none\nwidget.e2e.signalbox.dev/sel-y')" \
	-- kubectl get widgets -l 'grp=sel,a notin (x,z)' -o name
check "-l a (exists)" --lines 3 -- kubectl get widgets -l 'grp=sel,a' -o name
check "-l with no match prints kubectl's message" --equals 'No resources found in default namespace.' \
	-- kubectl get widgets -l 'a=nothing'
check "invalid label selector is refused" --rc 1 --fgrep 'unable to parse requirement' \
	-- kubectl get widgets -l 'a in (x'
check "--field-selector metadata.name=sel-y" --equals 'widget.e2e.signalbox.dev/sel-y' \
	-- kubectl get widgets --field-selector metadata.name=sel-y -o name
check "--field-selector metadata.name!= with a label selector" --lines 3 --no-fgrep 'sel-y' \
	-- kubectl get widgets -l grp=sel --field-selector metadata.name!=sel-y -o name
check "--field-selector metadata.namespace=default" --fgrep 'widget.e2e.signalbox.dev/sel-y' \
	-- kubectl get widgets --field-selector metadata.namespace=default -o name
check "unsupported field selector is refused" --rc 1 \
	--fgrep 'Error from server (BadRequest)' --fgrep 'spec.replicas' \
	-- kubectl get widgets --field-selector spec.replicas=1

{
	for i in 1 2 3 4 5 6 7; do
		widget "chunk-$i" 1 'chunk: "yes"'
		echo ---
	done
} >"$T/chunk.yaml"
kubectl apply -f "$T/chunk.yaml" >/dev/null 2>&1
check "--chunk-size=2 lists all 7 (-o name)" --lines 7 --grep 'chunk-7$' \
	-- kubectl get widgets -l chunk=yes --chunk-size=2 -o name
check "--chunk-size=2 lists all 7 (table, one header)" --lines 8 --grep '^NAME ' --grep '^chunk-1 ' \
	--grep '^chunk-7 ' -- kubectl get widgets -l chunk=yes --chunk-size=2
run kubectl get widgets -l chunk=yes --chunk-size=2 -o name -v=6
n_limit=$(printf '%s\n' "$OUT" | grep -c 'GET http.*/widgets?.*limit=2.* 200 OK')
n_cont=$(printf '%s\n' "$OUT" | grep -c 'GET http.*/widgets?.*continue=.* 200 OK')
expect_eq "--chunk-size=2 makes 4 requests of which 3 continue" "$n_limit $n_cont" "4 3"

check "delete -l deletes exactly the selected objects" \
	--equals "$(printf 'widget.e2e.signalbox.dev "sel-x" deleted\nwidget.e2e.signalbox.dev "sel-y" deleted')" \
	-- kubectl delete widgets -l 'grp=sel,a in (x,y)'
check "the others remain" --equals "$(printf 'widget.e2e.signalbox.dev/sel-none\nwidget.e2e.signalbox.dev/sel-z')" \
	-- kubectl get widgets -l grp=sel -o name
check "deletecollection with a labelSelector (DELETE on the collection)" --rc 0 \
	-- kubectl delete --raw '/apis/e2e.signalbox.dev/v1/namespaces/default/widgets?labelSelector=chunk%3Dyes'
check "deletecollection removed all 7" --equals 'No resources found in default namespace.' \
	-- kubectl get widgets -l chunk=yes
check "deletecollection left the other widgets" --lines 2 -- kubectl get widgets -l grp=sel -o name
check "delete -l of the rest" --lines 2 --grep 'deleted$' -- kubectl delete widgets -l grp=sel

# ------------------------------------------------------------------------------
echo "## namespaces"

printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: e2e-ns\n' >"$T/ns.yaml"
check "create a namespace (apply -f)" --equals 'namespace/e2e-ns created' -- kubectl apply -f "$T/ns.yaml"
check "get ns shows the new namespace Active" --grep '^default +Active ' --grep '^e2e-ns +Active ' \
	-- kubectl get ns
# kubectl create namespace sends the body as protobuf (built-in type).
NS2=0
check "kubectl create namespace" --equals 'namespace/e2e-ns2 created' -- kubectl create namespace e2e-ns2 && NS2=1
check "namespace is Active" --equals 'Active' -- kubectl get ns e2e-ns -o 'jsonpath={.status.phase}'
widget nsw 1 >"$T/nsw.yaml"
check "create a widget in the namespace" --equals 'widget.e2e.signalbox.dev/nsw created' \
	-- kubectl apply -n e2e-ns -f "$T/nsw.yaml"
check "create a servicemonitor in the namespace" \
	--equals 'servicemonitor.monitoring.coreos.com/example-app created' \
	-- kubectl apply -n e2e-ns -f "$EX/example-app-service-monitor.yaml"
check "get -n lists the namespace's objects only" --equals 'widget.e2e.signalbox.dev/nsw' \
	-- kubectl get widgets -n e2e-ns -o name
check "get -A shows the NAMESPACE column" --grep '^NAMESPACE +NAME +AGE$' \
	--grep '^e2e-ns +example-app ' --grep '^default +example-app ' -- kubectl get servicemonitors -A
check "objects in a missing namespace are refused" --rc 1 \
	--fgrep 'Error from server (NotFound): error when creating' --fgrep 'namespaces "nope-ns" not found' \
	-- kubectl create -n nope-ns -f "$T/nsw.yaml"
check "delete ns" --equals 'namespace "e2e-ns" deleted' -- kubectl delete ns e2e-ns --timeout=20s
check "namespace gone" --rc 1 --equals 'Error from server (NotFound): namespaces "e2e-ns" not found' \
	-- kubectl get ns e2e-ns
check "delete ns removed its widgets" --equals '' -- kubectl get widgets -A --field-selector metadata.namespace=e2e-ns -o name
check "delete ns removed its servicemonitors" --equals 'No resources found in e2e-ns namespace.' \
	-- kubectl get servicemonitors -n e2e-ns
check "delete ns left the default namespace's servicemonitor" \
	--equals 'servicemonitor.monitoring.coreos.com/example-app' -- kubectl get servicemonitor -n default example-app -o name
if [ "$NS2" = 1 ]; then
	check "delete the second namespace" --equals 'namespace "e2e-ns2" deleted' -- kubectl delete ns e2e-ns2 --timeout=20s
fi
check "default namespace cannot be deleted" --rc 1 --fgrep 'Forbidden' -- kubectl delete ns default --wait=false

# ------------------------------------------------------------------------------
echo "## CRD deletion"

check "delete own CRD" --equals 'customresourcedefinition.apiextensions.k8s.io "widgets.e2e.signalbox.dev" deleted' \
	-- kubectl delete crd widgets.e2e.signalbox.dev --timeout=20s
check "CRD group gone from api-versions" --no-grep '^e2e\.signalbox\.dev/' -- kubectl api-versions
check "CRD's resource type gone from api-resources" --no-grep '^widgets ' -- kubectl api-resources
check "get of the deleted CRD's type fails as unknown type" --rc 1 \
	--fgrep 'the server doesn'"'"'t have a resource type "widgets"' -- kubectl get widgets
check "the CRD's objects are gone from the store" --rc 1 --fgrep 'NotFound' \
	-- kubectl get --raw /apis/e2e.signalbox.dev/v1/namespaces/default/widgets/w1

# ------------------------------------------------------------------------------
echo "## shutdown"

sb_stop
if [ "$SB_STOP_RC" = 0 ]; then
	pass "server stops cleanly on SIGTERM (exit 0)"
else
	fail "server stops cleanly on SIGTERM (exit 0)" "exit status: $SB_STOP_RC"
	sb_server_log_tail 40
fi

echo "# suite took $((SECONDS - SUITE_START)) s"
sb_finish
