#!/usr/bin/env bash
# Benchmarks the capacity area of `paragon-admin health` against curl sending the same PromQL
# queries straight to the same Prometheus, in the same run: a sandbox of PODS pods over NODES
# nodes (default 10,000 over 500), and a real Prometheus (Debian's) scraping a test exporter
# that serves every one of those pods' containers under cAdvisor's and kube-state-metrics'
# names and labels (the series the per-service signals read: CPU usage and throttling, working
# set, OOM events, limits, restarts). Median of ROUNDS of
#   the capacity check's own time (`health --local -v`: its `elapsed_ms`), and the whole report
#   curl -Z: every signal's query (taken from `monitoring dashboard`, the same expressions) at
#   once to /api/v1/query, as the check sends them
# and the ratio check/curl.
#
# Usage: scripts/bench-capacity.sh   (env: PODS=10000 NODES=500 ROUNDS=3 SCRAPE=5
#                                       PARAGON_BIN=path to skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."

PODS=${PODS:-10000}
NODES=${NODES:-500}
ROUNDS=${ROUNDS:-3}
SCRAPE=${SCRAPE:-5}

for tool in prometheus kubectl curl python3; do
  command -v "$tool" >/dev/null || { echo "bench-capacity: $tool is missing" >&2; exit 1; }
done

BENCH=bench-capacity
# shellcheck source=bench-common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/bench-common.sh"

if [[ -z "${PARAGON_BIN:-}" ]]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
  cargo build --release --quiet --bin paragon-admin
  # The target folder is shared: keep a copy of this build.
  cp "$CARGO_TARGET_DIR/release/paragon-admin" "$work/paragon-admin"
  PARAGON_BIN=$work/paragon-admin
fi

# --- the sandbox, and its pods' series ---------------------------------------------------------
kc=$work/kubeconfig
start_sandbox "$kc" "$PODS" "$NODES"
KUBECONFIG=$kc kubectl get pods -n paragon -o json >"$work/pods.json"

# One line per series: NAME{LABELS} KIND VALUE, KIND `gauge` or `counter` (VALUE its rate per
# second). cAdvisor as the kubelet's /metrics/cadvisor labels it (google/cadvisor
# metrics/prometheus.go; the kubelet adds container, pod and namespace); kube-state-metrics as
# internal/store/pod.go writes it.
python3 - "$work/pods.json" >"$work/series.txt" <<'PY'
import json, sys
pods = json.load(open(sys.argv[1]))["items"]
gib = 1024 ** 3
for i, p in enumerate(pods):
    m = p["metadata"]
    node = p.get("spec", {}).get("nodeName", "n-0")
    for c in p["spec"]["containers"]:
        pod = 'namespace="%s",pod="%s",container="%s"' % (m["namespace"], m["name"], c["name"])
        cad = 'id="/kubepods/burstable/pod%s/%s",image="%s",name="%s",%s' % (
            m.get("uid", i), c["name"], c.get("image", ""), c["name"], pod)
        busy = 0.05 + (i % 17) / 40
        print('container_cpu_usage_seconds_total{cpu="total",%s} counter %f' % (cad, busy))
        print('container_cpu_cfs_periods_total{%s} counter 10' % cad)
        print('container_cpu_cfs_throttled_periods_total{%s} counter %f' % (cad, (i % 5) / 10))
        print('container_memory_working_set_bytes{%s} gauge %f' % (cad, (0.3 + (i % 13) / 20) * gib))
        print('container_oom_events_total{%s} counter 0' % cad)
        uid = 'uid="%s",node="%s"' % (m.get("uid", i), node)
        print('kube_pod_container_resource_limits{%s,%s,resource="cpu",unit="core"} gauge 1' % (pod, uid))
        print('kube_pod_container_resource_limits{%s,%s,resource="memory",unit="byte"} gauge %d' % (pod, uid, gib))
        print('kube_pod_container_status_restarts_total{%s,uid="%s"} counter 0' % (pod, m.get("uid", i)))
PY
series=$(wc -l <"$work/series.txt")

cat >"$work/exporter.py" <<'PY'
import http.server, sys, time
start = time.time()
rows = [l.rsplit(" ", 2) for l in open(sys.argv[1]).read().splitlines()]
class Metrics(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        now = time.time() - start
        body = "".join(
            "%s %f\n" % (n, float(v) * now if k == "counter" else float(v)) for n, k, v in rows
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
s = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Metrics)
s.serve_forever()
PY
exporter=$(free_port)
python3 "$work/exporter.py" "$work/series.txt" "$exporter" &
pids+=($!)
wait_port "$exporter"

# --- Prometheus --------------------------------------------------------------------------------
prom=$(free_port)
cat >"$work/prometheus.yml" <<EOF2
global:
  scrape_interval: ${SCRAPE}s
  scrape_timeout: $((SCRAPE - 1))s
scrape_configs:
- job_name: paragon
  static_configs:
  - targets: ['127.0.0.1:$exporter']
EOF2
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom" >"$work/prometheus.log" 2>&1 &
pids+=($!)
wait_port "$prom"
# Every series scraped at least three times: rate() and irate() have samples to work on.
want=$(grep -c '^container_memory_working_set_bytes' "$work/series.txt")
ready=
for _ in $(seq 240); do
  got=$(curl -s "http://127.0.0.1:$prom/api/v1/query" \
    --data-urlencode "query=count(count_over_time(container_memory_working_set_bytes[5m]) >= 3)" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')
  if [[ $got == "$want" ]]; then ready=1; break; fi
  sleep 1
done
[[ -n $ready ]] || { echo "bench-capacity: Prometheus holds $got of $want pods' series after 240 s" >&2; exit 1; }

closed=$(free_port)
cat >"$work/config.toml" <<EOF2
[profiles.bench]
host = "bastion.invalid"
[profiles.bench.services.prometheus]
target = "127.0.0.1:$prom"
via = "bastion"
[profiles.bench.services.grafana]
target = "127.0.0.1:$closed"
[profiles.bench.services.kibana]
target = "127.0.0.1:$closed"
EOF2

# The same queries for curl: the dashboard's expressions are the signals' queries.
"$PARAGON_BIN" --config "$work/config.toml" -p bench monitoring dashboard >"$work/dashboard.json"
python3 - "$work/dashboard.json" "$prom" >"$work/curl.cfg" <<'PY'
import json, sys, urllib.parse
d = json.load(open(sys.argv[1]))
for p in d["panels"]:
    for t in p.get("targets", []):
        q = urllib.parse.quote(t["expr"], safe="")
        print('url = "http://127.0.0.1:%s/api/v1/query?query=%s&timeout=29s"' % (sys.argv[2], q))
        print('output = "/dev/null"')
PY
queries=$(grep -c '^url' "$work/curl.cfg")

now() { date +%s.%N; }
# health_run NAME ARGS...: `health --local -v` with ARGS; its wall time into NAME.s and the
# capacity check's own elapsed_ms into NAME.ms.
health_run() {
  local name=$1 t0 t1 ms; shift
  t0=$(now)
  "$PARAGON_BIN" --config "$work/config.toml" -p bench -v health --local \
    --output json --timeout 30 "$@" >"$work/$name.json" 2>"$work/$name.err" || true
  t1=$(now)
  echo "$t1 - $t0" | bc -l >>"$work/$name.s"
  ms=$(grep 'check{check=capacity}' "$work/$name.err" | grep -o 'elapsed_ms=[0-9]*' | tail -1 | cut -d= -f2)
  [[ -n $ms ]] || { echo "bench-capacity: no capacity timing in health -v: $(tail -3 "$work/$name.err")" >&2; exit 1; }
  echo "$ms" >>"$work/$name.ms"
}
# Without a kubeconfig (an empty home), the cluster's checks end at once: the capacity check
# alone shares the machine with Prometheus, as curl does.
mkdir "$work/home"
for _ in $(seq "$ROUNDS"); do
  HOME=$work/home KUBECONFIG='' health_run alone
  health_run health --kubeconfig "$kc"
  t0=$(now)
  curl -sS -Z --parallel-max 64 -K "$work/curl.cfg" 2>"$work/curl.err" ||
    { echo "bench-capacity: curl failed: $(cat "$work/curl.err")" >&2; exit 1; }
  t1=$(now)
  echo "$t1 - $t0" | bc -l >>"$work/curl.s"
done
checked=$(python3 - "$work/alone.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c = [f for f in d["checks"] if f.get("area") == "capacity"]
mem = next((f["message"] for f in c if f["message"].startswith("memory:")), "no memory finding")
print("%d capacity findings, %d checked; %s" % (len(c), sum(1 for f in c if f["checked"]), mem))
PY
)

alone=$(median <"$work/alone.ms"); alone_wall=$(median <"$work/alone.s")
check=$(median <"$work/health.ms"); report=$(median <"$work/health.s")
direct=$(median <"$work/curl.s")
echo "sandbox: $PODS pods on $NODES nodes; Prometheus $(prometheus --version 2>&1 | head -1 | cut -d' ' -f3) holding $series series of the paragon namespace's containers; $ROUNDS rounds (median)"
echo "health's capacity area: $checked"
printf '%-58s %10s\n' "" "wall (s)"
printf '%-58s %10.3f\n' "health: the capacity check ($queries queries), alone" "$(echo "$alone/1000" | bc -l)"
printf '%-58s %10.3f\n' "health --local: the whole process, no cluster" "$alone_wall"
printf '%-58s %10.3f\n' "curl -Z: the same $queries queries at once" "$direct"
printf '%-58s %10.3f\n' "health: the capacity check beside the cluster's checks" "$(echo "$check/1000" | bc -l)"
printf '%-58s %10.3f\n' "health --local: the whole report on the $PODS pods" "$report"
printf 'ratio capacity check (alone)/curl: %.2f; whole process (no cluster)/curl: %.2f\n' \
  "$(echo "$alone/1000/$direct" | bc -l)" "$(echo "$alone_wall/$direct" | bc -l)"
