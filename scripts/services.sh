#!/usr/bin/env bash
# Local test services for lifeboat: a single-node, in-memory Ceph cluster with the RADOS
# Gateway (radosgw) as a real S3 server on loopback.
#
#   scripts/services.sh start    start (idempotent) and wait until S3 answers
#   scripts/services.sh stop     stop the daemons and remove their runtime data (safe if none run)
#   scripts/services.sh status   show what runs; exit 0 only if everything is up
#   scripts/services.sh env      print `export LIFEBOAT_TEST_S3_*=...` lines (eval-able)
#
# For test runners (test/helpers/global-setup.ts), so that concurrent runs share one instance:
#   scripts/services.sh start --lease PID   start if needed and record that process PID uses it
#   scripts/services.sh release PID         drop that lease; stop the services if they were
#                                           started by a lease holder and no live lease remains
# A plain `start` marks the services as wanted by a person: `release` then never stops them.
#
# Topology: one monitor, one OSD (`osd objectstore = memstore`, data in RAM), radosgw with the
# beast front end on 127.0.0.1. No manager, no systemd; daemons run with -f in the background,
# their PIDs are recorded in the state directory. Needs the Debian packages
# ceph-mon ceph-osd radosgw curl (see .ci/run).
#
# Environment (all optional):
#   LIFEBOAT_SERVICES_DIR            state dir (default: <repo>/.services, git-ignored)
#   LIFEBOAT_S3_PORT                 radosgw port on 127.0.0.1 (default 7480)
#   LIFEBOAT_CEPH_MON_PORT           monitor port on 127.0.0.1 (default 3300)
#   LIFEBOAT_CEPH_OSD_PORT           first of the 8 OSD ports on 127.0.0.1 (default 6800)
#   LIFEBOAT_S3_ACCESS_KEY           S3 access key (default lifeboat-test)
#   LIFEBOAT_S3_SECRET_KEY           S3 secret key (default lifeboat-test-secret)
#   LIFEBOAT_RGW_LC_DEBUG_INTERVAL   seconds a lifecycle "day" lasts (default 10)
#   LIFEBOAT_SERVICES_TIMEOUT        start-up timeout in seconds (default 60)
#   LIFEBOAT_MEMSTORE_BYTES          capacity the in-memory OSD reports (default 8 GiB)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${LIFEBOAT_SERVICES_DIR:-$REPO_ROOT/.services}"
S3_PORT="${LIFEBOAT_S3_PORT:-7480}"
MON_PORT="${LIFEBOAT_CEPH_MON_PORT:-3300}"
OSD_PORT="${LIFEBOAT_CEPH_OSD_PORT:-6800}"
ACCESS_KEY="${LIFEBOAT_S3_ACCESS_KEY:-lifeboat-test}"
SECRET_KEY="${LIFEBOAT_S3_SECRET_KEY:-lifeboat-test-secret}"
LC_DEBUG_INTERVAL="${LIFEBOAT_RGW_LC_DEBUG_INTERVAL:-10}"
TIMEOUT="${LIFEBOAT_SERVICES_TIMEOUT:-60}"
MEMSTORE_BYTES="${LIFEBOAT_MEMSTORE_BYTES:-8589934592}"
STOP_GRACE=3 # seconds between TERM and KILL
# radosgw's default zonegroup is named "default"; SigV4 works with any region name and the AWS
# SDK then sends LocationConstraint "default", which matches the zonegroup's api_name.
S3_REGION="default"

CONF="$STATE_DIR/ceph.conf"
LOG_DIR="$STATE_DIR/log"
RUN_DIR="$STATE_DIR/run"
PID_DIR="$STATE_DIR/pids"
ENV_FILE="$STATE_DIR/s3.env"
LEASE_DIR="$STATE_DIR/leases"
AUTO_MARKER="$STATE_DIR/started-for-leases"
ENDPOINT="http://127.0.0.1:$S3_PORT"
DAEMONS=(radosgw osd mon) # stop order; start order is the reverse
RGW_POOLS=(.rgw.root default.rgw.control default.rgw.meta default.rgw.log
  default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec
  default.rgw.glacier.data)

export CEPH_CONF="$CONF"
# The python bindings for librados come with the ceph CLI, for the system python only.
CEPH_PYTHON=/usr/bin/python3

log() { printf 'services: %s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

STARTING=0

# die MESSAGE [LOGFILE...]: one-line error, then the tail of the relevant logs. A failed start
# stops what it had started (the logs are kept).
die() {
  printf 'services: ERROR: %s\n' "$1" >&2
  local f
  for f in "${@:2}"; do
    if [[ -s "$f" ]]; then
      printf -- '--- last lines of %s ---\n' "$f" >&2
      tail -n 25 "$f" >&2
    fi
  done
  if ((STARTING)); then
    STARTING=0
    cmd_stop >/dev/null 2>&1 || true
  fi
  exit 1
}

# Phase timings on stderr when LIFEBOAT_SERVICES_VERBOSE=1.
T_START=""
phase() {
  if [[ "${LIFEBOAT_SERVICES_VERBOSE:-}" == 1 ]]; then log "$(elapsed "$T_START")s $*"; fi
}

need_tools() {
  local missing=() t
  for t in ceph-mon ceph-osd radosgw radosgw-admin monmaptool curl "$CEPH_PYTHON"; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  if ((${#missing[@]})); then
    die "missing ${missing[*]}; install with: apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw curl (or run .ci/run)"
  fi
}

# The process name the kernel reports for each daemon (comm is truncated to 15 chars).
daemon_comm() {
  case "$1" in
  mon) echo ceph-mon ;;
  osd) echo ceph-osd ;;
  radosgw) echo radosgw ;;
  esac
}

# Print the recorded PID of a daemon if that process is alive and still is that daemon.
live_pid() {
  local name="$1" pid comm
  [[ -f "$PID_DIR/$name.pid" ]] || return 1
  pid="$(<"$PID_DIR/$name.pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
  [[ "$comm" == "$(daemon_comm "$name")" ]] || return 1
  ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null || return 1 # exited
  echo "$pid"
}

s3_answers() {
  # An anonymous ListBuckets: any HTTP status means the gateway is serving requests.
  local code
  code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$ENDPOINT/" 2>/dev/null)" || return 1
  [[ "$code" =~ ^[1-5][0-9][0-9]$ ]]
}

write_conf() {
  local fsid="$1" asok="$RUN_DIR/\$name.asok"
  # Unix socket paths are limited to 107 bytes; without a usable path, go without admin sockets.
  if ((${#RUN_DIR} + 30 > 107)); then asok=""; fi
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$MON_PORT]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind port min = $OSD_PORT
ms bind port max = $((OSD_PORT + 7))
run dir = $RUN_DIR
admin socket = $asok
log file = $LOG_DIR/\$name.log
log to stderr = false
err to stderr = true

# No authentication. Every ms mode must then be crc, otherwise clients fail with -13.
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
ms mon service mode = crc
ms mon cluster mode = crc

# Single node, single copy.
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on pool no app = false
paxos propose interval = 0.1

[mon.a]
mon data = $STATE_DIR/mon

[osd.0]
osd data = $STATE_DIR/osd
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES

[client.rgw.lifeboat]
rgw frontends = beast endpoint=127.0.0.1:$S3_PORT tcp_nodelay=1
rgw data = $STATE_DIR/rgw
rgw lc debug interval = $LC_DEBUG_INTERVAL
rgw dynamic resharding = false
rgw lc max worker = 1
EOF
}

# spawn NAME CMD...: run a daemon in the foreground of a background job, record its PID.
spawn() {
  local name="$1"
  shift
  # setsid: the daemons must not die with the caller's terminal or process group (for example
  # when a test runner is interrupted); `stop` ends them by PID. stdio must not be inherited,
  # or a caller reading our output (execFile) would wait for the daemons to exit.
  setsid "$@" </dev/null >>"$LOG_DIR/$name.out" 2>&1 9>&- &
  local pid=$! i
  echo "$pid" >"$PID_DIR/$name.pid"
  # Until the fork has exec'd the daemon, /proc/PID/comm names bash or setsid.
  for ((i = 0; i < 100; i++)); do
    live_pid "$name" >/dev/null && return 0
    [[ -d "/proc/$pid" ]] || break
    sleep 0.02
  done
  die "$name did not start" "$LOG_DIR/$name.out"
}

# wait_for DESCRIPTION DAEMON LOG CMD...: poll CMD until it succeeds; fail on timeout or
# when DAEMON died.
wait_for() {
  local what="$1" name="$2" logf="$3"
  shift 3
  while ! "$@" >/dev/null 2>&1; do
    if ! live_pid "$name" >/dev/null; then
      die "$name exited while waiting for $what" "$logf" "$LOG_DIR/$name.out"
    fi
    if (($(date +%s) >= DEADLINE)); then
      die "timed out after ${TIMEOUT}s waiting for $what" "$logf" "$LOG_DIR/$name.out"
    fi
    sleep 0.1
  done
}

# run_step DESCRIPTION LOG CMD...: run a bounded command; on failure show its output.
run_step() {
  local what="$1" logf="$2" left
  shift 2
  left=$((DEADLINE - $(date +%s)))
  ((left > 0)) || left=1
  if ! timeout "$left" "$@" >>"$logf" 2>&1; then
    die "$what failed" "$logf"
  fi
}

all_running() {
  local d
  for d in "${DAEMONS[@]}"; do live_pid "$d" >/dev/null || return 1; done
}

any_running() {
  local d
  for d in "${DAEMONS[@]}"; do live_pid "$d" >/dev/null && return 0; done
  return 1
}

write_env_file() {
  local tmp="$ENV_FILE.tmp"
  cat >"$tmp" <<EOF
LIFEBOAT_TEST_S3_ENDPOINT=$ENDPOINT
LIFEBOAT_TEST_S3_ACCESS_KEY=$ACCESS_KEY
LIFEBOAT_TEST_S3_SECRET_KEY=$SECRET_KEY
LIFEBOAT_TEST_S3_REGION=$S3_REGION
EOF
  mv "$tmp" "$ENV_FILE"
}

# Leases: one file per test-runner process using the services.
add_lease() {
  mkdir -p "$LEASE_DIR"
  : >"$LEASE_DIR/$1"
}

live_leases() {
  local f n=0
  [[ -d "$LEASE_DIR" ]] || {
    echo 0
    return
  }
  for f in "$LEASE_DIR"/*; do
    [[ -e "$f" ]] || continue
    if [[ -d "/proc/${f##*/}" ]]; then n=$((n + 1)); else rm -f "$f"; fi
  done
  echo "$n"
}

# start [--lease PID]
cmd_start() {
  local lease=""
  if [[ "${1:-}" == --lease ]]; then
    lease="${2:-}"
    [[ "$lease" =~ ^[0-9]+$ ]] || die "start --lease needs a process id"
  fi
  need_tools
  if all_running && s3_answers; then
    write_env_file
    if [[ -n "$lease" ]]; then add_lease "$lease"; else rm -f "$AUTO_MARKER"; fi
    log "already running (S3 at $ENDPOINT, state in $STATE_DIR)"
    return 0
  fi
  if any_running; then
    log "found a partly running or unresponsive instance; restarting it"
    cmd_stop
  fi

  local fsid osd_uuid
  T_START="$(now)"
  STARTING=1
  DEADLINE=$(($(date +%s) + TIMEOUT))

  # An instance from another state dir (another checkout) would hold the fixed ports.
  local port
  for port in "$MON_PORT" "$OSD_PORT" "$S3_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "127.0.0.1:$port is already in use (another lifeboat services instance, outside $STATE_DIR?); stop it, or set LIFEBOAT_CEPH_MON_PORT, LIFEBOAT_CEPH_OSD_PORT and LIFEBOAT_S3_PORT"
    fi
  done

  rm -rf "$STATE_DIR/mon" "$STATE_DIR/osd" "$STATE_DIR/rgw" "$RUN_DIR" "$PID_DIR" "$LOG_DIR" \
    "$ENV_FILE" "$STATE_DIR/monmap"
  mkdir -p "$STATE_DIR/mon" "$STATE_DIR/osd" "$STATE_DIR/rgw" "$RUN_DIR" "$PID_DIR" "$LOG_DIR"

  fsid="$(cat /proc/sys/kernel/random/uuid)"
  osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
  write_conf "$fsid"
  local setup_log="$LOG_DIR/setup.log"
  : >"$setup_log"

  # Monitor.
  run_step "creating the monitor map" "$setup_log" \
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$STATE_DIR/monmap"
  run_step "creating the monitor store" "$LOG_DIR/mon.a.log" \
    ceph-mon --mkfs -c "$CONF" -i a --monmap "$STATE_DIR/monmap"
  spawn mon ceph-mon -f -c "$CONF" -i a
  phase "monitor spawned"

  # Register the OSD and create the rgw pools up front (radosgw creating them one by one is
  # slow). librados from python, all pool commands at once: the monitor folds them into one
  # or two map updates (~0.2 s instead of ~2 s with one `ceph` CLI command per pool).
  if ! timeout $((DEADLINE - $(date +%s) + 1)) "$CEPH_PYTHON" - "$CONF" "$osd_uuid" \
    "$((DEADLINE - $(date +%s)))" "${RGW_POOLS[@]}" >"$LOG_DIR/setup-pools.log" 2>&1 <<'PY'; then
import json, sys, threading
import rados

conf, osd_uuid, timeout, pools = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
cluster = rados.Rados(conffile=conf)
cluster.connect(timeout=max(timeout, 1))  # waits for the monitor to answer


errors = []


def command(**cmd):
    ret, _out, status = cluster.mon_command(json.dumps(cmd), b"", timeout=30)
    if ret != 0:
        errors.append(f"{cmd['prefix']} {cmd.get('pool', '')} failed: {ret} {status}")
    print(status or cmd["prefix"], flush=True)


command(prefix="osd new", uuid=osd_uuid, id=0)
threads = [
    threading.Thread(
        target=command,
        kwargs=dict(prefix="osd pool create", pool=p, pg_num=8, pgp_num=8, pool_type="replicated"),
    )
    for p in pools
]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    raise SystemExit("\n".join(errors))
cluster.shutdown()
PY
    live_pid mon >/dev/null || die "the monitor exited" "$LOG_DIR/mon.a.log" "$LOG_DIR/mon.out"
    die "registering the OSD and creating the rgw pools failed" "$LOG_DIR/setup-pools.log" \
      "$LOG_DIR/mon.a.log"
  fi
  phase "monitor up, pools created"

  # OSD. Clients must not talk to the cluster before the OSD is marked up: an operation sent
  # while no OSD is up waits for the objecter's next 5 s tick.
  run_step "creating the OSD store" "$LOG_DIR/osd.0.log" \
    ceph-osd --mkfs -c "$CONF" -i 0 --osd-uuid "$osd_uuid"
  spawn osd ceph-osd -f -c "$CONF" -i 0
  wait_for "the OSD to become active" osd "$LOG_DIR/osd.0.log" \
    grep -q 'state: booting -> active' "$LOG_DIR/osd.0.log"
  phase "osd active"

  # The test user (the first radosgw-admin call also creates the default zonegroup and zone),
  # then placement for the GLACIER storage class. radosgw-admin blocks until the OSD serves
  # I/O, so this also waits for the cluster to become usable.
  run_step "creating the S3 user (and the default zone)" "$setup_log" \
    radosgw-admin -c "$CONF" user create --uid=lifeboat-test --display-name="lifeboat tests" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY"
  phase "user created"
  run_step "adding the GLACIER storage class to the zonegroup" "$setup_log" \
    radosgw-admin -c "$CONF" zonegroup placement add --rgw-zonegroup default \
    --placement-id default-placement --storage-class GLACIER
  run_step "adding the GLACIER storage class to the zone" "$setup_log" \
    radosgw-admin -c "$CONF" zone placement add --rgw-zone default \
    --placement-id default-placement --storage-class GLACIER \
    --data-pool default.rgw.glacier.data

  phase "zone and user ready"
  spawn radosgw radosgw -f -c "$CONF" -n client.rgw.lifeboat
  wait_for "S3 on $ENDPOINT" radosgw "$LOG_DIR/client.rgw.lifeboat.log" s3_answers

  STARTING=0
  write_env_file
  if [[ -n "$lease" ]]; then
    add_lease "$lease"
    : >"$AUTO_MARKER"
  else
    rm -f "$AUTO_MARKER"
  fi
  log "started in $(elapsed "$T_START")s: S3 at $ENDPOINT (region $S3_REGION, access key $ACCESS_KEY); env in $ENV_FILE"
}

is_gone() { [[ ! -d "/proc/$1" ]] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# terminate PID...: TERM, then KILL whatever still runs after STOP_GRACE seconds.
terminate() {
  local pid waited=0 alive
  kill -TERM "$@" 2>/dev/null || true
  while :; do
    alive=()
    for pid in "$@"; do is_gone "$pid" || alive+=("$pid"); done
    ((${#alive[@]})) || return 0
    if ((waited >= STOP_GRACE * 10)); then
      log "killing ${alive[*]} (still running ${STOP_GRACE}s after TERM)"
      kill -KILL "${alive[@]}" 2>/dev/null || true
      for _ in 1 2 3 4 5 6 7 8 9 10; do
        alive=()
        for pid in "$@"; do is_gone "$pid" || alive+=("$pid"); done
        ((${#alive[@]})) || return 0
        sleep 0.1
      done
      return 0
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

cmd_stop() {
  local d pid
  # One at a time, in this order: radosgw needs the cluster to shut down, and the OSD tells
  # the monitor it is going away (and waits for an answer).
  local stopped=()
  for d in "${DAEMONS[@]}"; do
    if pid="$(live_pid "$d")"; then
      terminate "$pid"
      stopped+=("$pid")
    fi
  done
  # Orphaned daemons are reaped by PID 1, which in some sandboxes takes a moment; wait briefly
  # so that nothing (not even a zombie) is listed once stop returns.
  local i
  for ((i = 0; i < 30 && ${#stopped[@]}; i++)); do
    local left=()
    for pid in "${stopped[@]}"; do [[ -d "/proc/$pid" ]] && left+=("$pid"); done
    stopped=("${left[@]+"${left[@]}"}")
    ((${#stopped[@]})) && sleep 0.1
  done
  if [[ -d "$STATE_DIR" ]]; then
    rm -rf "$STATE_DIR/mon" "$STATE_DIR/osd" "$STATE_DIR/rgw" "$RUN_DIR" "$PID_DIR" \
      "$ENV_FILE" "$STATE_DIR/monmap" "$STATE_DIR/ceph.conf" "$LEASE_DIR" "$AUTO_MARKER"
  fi
  log "stopped (logs kept in $LOG_DIR)"
}

cmd_status() {
  local d pid ok=0
  for d in "${DAEMONS[@]}"; do
    if pid="$(live_pid "$d")"; then
      printf '%-8s running (pid %s)\n' "$d" "$pid"
    else
      printf '%-8s not running\n' "$d"
      ok=1
    fi
  done
  if s3_answers; then
    printf '%-8s answering at %s\n' s3 "$ENDPOINT"
  else
    printf '%-8s not answering at %s\n' s3 "$ENDPOINT"
    ok=1
  fi
  return "$ok"
}

cmd_env() {
  [[ -f "$ENV_FILE" ]] || die "services are not running (no $ENV_FILE); run: scripts/services.sh start"
  sed -e '/^[A-Z_][A-Z0-9_]*=/!d' -e 's/^/export /' "$ENV_FILE"
}

# start and stop are serialised (several test runs may call start at the same time).
lock() {
  mkdir -p "$STATE_DIR"
  exec 9>"$STATE_DIR/lock"
  if ! flock -w "$TIMEOUT" 9; then
    die "another services.sh start/stop holds $STATE_DIR/lock for over ${TIMEOUT}s"
  fi
}

cmd_release() {
  local pid="${1:-}" left
  [[ "$pid" =~ ^[0-9]+$ ]] || die "release needs a process id"
  rm -f "$LEASE_DIR/$pid"
  left="$(live_leases)"
  if ! any_running; then
    log "not running"
  elif ((left > 0)); then
    log "leaving the services running: $left other test run(s) still use them"
  elif [[ -f "$AUTO_MARKER" ]]; then
    cmd_stop
  else
    log "leaving the services running (started with a plain \`start\`)"
  fi
}

case "${1:-}" in
start)
  lock
  cmd_start "${@:2}"
  ;;
release)
  lock
  cmd_release "${2:-}"
  ;;
stop)
  lock
  cmd_stop
  ;;
status) cmd_status ;;
env) cmd_env ;;
*)
  echo "usage: $0 start [--lease PID] | stop | status | env | release PID" >&2
  exit 2
  ;;
esac
