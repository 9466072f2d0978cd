#!/usr/bin/env bash
# Validates everything under deploy/ without a container engine or a cluster (issue 14). Called by .ci/run.
# Installs what it needs from the package registries and fails when it cannot: a validator that is missing
# never turns into a skipped check.
#
#   Kubernetes  deploy/kubernetes/*.yaml      kubernetes-validate --strict (PyPI; the Kubernetes OpenAPI
#                                             schemas ship inside the package, no network) for 1.30 and 1.37;
#                                             kustomization.yaml lists every manifest but the example Secrets
#   Compose     deploy/compose/compose.yaml   check-jsonschema (PyPI) against the Compose specification schema
#                                             vendored in deploy/compose/compose-spec.schema.json
#   HAProxy     deploy/compose/haproxy.cfg    haproxy -c (Debian), no warning but unresolvable replica names
#   Alerts      deploy/prometheus/alerts.yml  promtool check rules + promtool test rules alerts.test.yml
#   Grafana     deploy/grafana/gateway.json   JSON, unique panel ids, every query parsed by promtool
#   Scripts     deploy/compose/**/*.sh        sh -n
# Metric names and labels of the dashboard and alerts are checked against a running gateway by
# tests/deploy_manifests.rs (cargo test).
set -euo pipefail
cd "$(dirname "$0")"

KUBERNETES_VALIDATE_VERSION=1.37.0
CHECK_JSONSCHEMA_VERSION=0.39.0

need_pip() {
    # $1 command, $2 pip requirement
    if ! command -v "$1" >/dev/null 2>&1; then
        python3 -m pip install --quiet "$2"
    fi
    command -v "$1" >/dev/null 2>&1 || { echo "error: $1 could not be installed ($2)" >&2; exit 1; }
}
need_apt() {
    # $1 command, $2 Debian package
    if ! command -v "$1" >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2"
    fi
    command -v "$1" >/dev/null 2>&1 || { echo "error: $1 could not be installed (apt $2)" >&2; exit 1; }
}
need_pip kubernetes-validate "kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}"
need_pip check-jsonschema "check-jsonschema==${CHECK_JSONSCHEMA_VERSION}"
need_apt haproxy haproxy
need_apt promtool prometheus

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== Kubernetes manifests (kubernetes-validate --strict)"
manifests=(kubernetes/*.yaml)
for f in "${manifests[@]}"; do
    [ "$f" = kubernetes/kustomization.yaml ] && continue
    resources=$(python3 -c 'import sys, yaml; print(sum(1 for d in yaml.safe_load_all(open(sys.argv[1])) if d))' "$f")
    for version in 1.30.0 1.37.0; do
        out=$(kubernetes-validate --strict -k "$version" "$f") || { echo "$out" >&2; exit 1; }
        echo "$out"
        # It passes a file without resources, and only warns about a kind it has no schema for.
        passed=$(grep -c '^INFO .* passed for resource' <<<"$out" || true)
        if [ "$resources" -eq 0 ] || [ "$passed" -ne "$resources" ] || grep -q '^WARN' <<<"$out"; then
            echo "error: $f: $passed of $resources resources validated against $version" >&2
            exit 1
        fi
    done
done
python3 - <<'EOF'
import glob, os, sys, yaml
k = yaml.safe_load(open("kubernetes/kustomization.yaml"))
assert k["kind"] == "Kustomization", "kustomization.yaml: kind"
listed = set(k["resources"])
present = {os.path.basename(p) for p in glob.glob("kubernetes/*.yaml")} - {"kustomization.yaml", "secrets.example.yaml"}
if listed != present:
    sys.exit(f"kustomization.yaml resources {sorted(listed)} != manifests {sorted(present)}")
print(f"kustomization.yaml lists every manifest: {sorted(listed)}")
EOF

echo "== Compose file (Compose specification schema)"
check-jsonschema --schemafile compose/compose-spec.schema.json compose/compose.yaml

echo "== HAProxy configuration (haproxy -c)"
# The replicas' names resolve only inside the compose network (init-addr none lets HAProxy start without them).
if ! out=$(haproxy -c -f compose/haproxy.cfg 2>&1); then
    echo "$out" >&2
    exit 1
fi
echo "$out"
if grep '\[WARNING\]' <<<"$out" | grep -v 'could not resolve address' | grep -q .; then
    echo "error: haproxy.cfg has warnings" >&2
    exit 1
fi

echo "== Alert rules (promtool)"
promtool check rules prometheus/alerts.yml
promtool test rules prometheus/alerts.test.yml

echo "== Grafana dashboard (every query parsed by promtool)"
python3 - "$tmp/dashboard-rules.yml" <<'EOF'
import json, sys, yaml
d = json.load(open("grafana/gateway.json"))
ids, exprs = [], []
def walk(panels):
    for p in panels:
        ids.append(p["id"])
        for t in p.get("targets", []):
            exprs.append((p["title"], t["expr"]))
        walk(p.get("panels", []))
walk(d["panels"])
if len(ids) != len(set(ids)):
    sys.exit("gateway.json: duplicate panel ids")
if not exprs:
    sys.exit("gateway.json: no queries")
for v in d["templating"]["list"]:
    if v["type"] == "query":
        # label_values(<selector>, label): the selector must be valid PromQL.
        q = v["query"]["query"]
        assert q.startswith("label_values(") and q.endswith(")"), q
        exprs.append((f"variable {v['name']}", q[len("label_values("):q.rindex(",")]))
# Grafana's variables become plain values so promtool can parse each query as a recording rule.
subst = {"$__rate_interval": "5m", "$job": ".*", "$instance": ".*"}
rules = []
for i, (title, e) in enumerate(exprs):
    for k, v in subst.items():
        e = e.replace(k, v)
    if "$" in e:
        sys.exit(f"gateway.json: {title}: unknown variable in {e}")
    rules.append({"record": f"dashboard:query_{i}", "expr": e})
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[1], "w"))
print(f"gateway.json: {len(ids)} panels, {len(exprs)} queries")
EOF
promtool check rules "$tmp/dashboard-rules.yml"

echo "== Shell scripts (sh -n)"
for s in compose/*.sh compose/postgres/*.sh; do
    sh -n "$s"
    echo "$s: OK"
done

echo "deploy/validate.sh: all checks passed"
