# shellcheck shell=bash
# Helpers shared by deploy/local/{kafka,etcd,postgres,mysql,s3,setup}, deploy/test and deploy/quickstart. Sourced, not run.

SLUICE_CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
SLUICE_RUN_DIR="${SLUICE_RUN_DIR:-$SLUICE_CACHE/run}"
export SLUICE_CACHE SLUICE_RUN_DIR

_sluice_tag="${SLUICE_LOG_TAG:-$(basename "$0")}"

log() { printf '[%s] %s\n' "$_sluice_tag" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$_sluice_tag" "$*" >&2; exit 1; }

need_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' not found: run deploy/local/setup first"
  done
}

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# pid_alive PIDFILE [CMDLINE-SUBSTRING]: true when the pid in PIDFILE is a live process (whose command line
# contains the substring, if given — guards against a recycled pid).
pid_alive() {
  local pidfile="$1" want="${2:-}" pid
  [[ -s "$pidfile" ]] || return 1
  pid="$(<"$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -n "$want" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$want" || return 1
  fi
  return 0
}

# signal_tree SIGNAL PID: signal PID's whole process group when PID leads one (start_bg makes every service a
# session and group leader, so helper children go too), else PID alone.
signal_tree() {
  local sig="$1" pid="$2" pgid
  pgid="$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ' || true)"
  if [[ "$pgid" == "$pid" ]]; then
    kill "-$sig" -- "-$pid" 2>/dev/null || true
  else
    kill "-$sig" "$pid" 2>/dev/null || true
  fi
}

# stop_pid PIDFILE NAME [TIMEOUT-SECONDS] [CMDLINE-SUBSTRING]: SIGTERM, wait, SIGKILL as last resort.
stop_pid() {
  local pidfile="$1" name="$2" timeout="${3:-30}" want="${4:-}" pid i
  if ! pid_alive "$pidfile" "$want"; then
    rm -f "$pidfile"
    log "$name is not running"
    return 0
  fi
  pid="$(<"$pidfile")"
  log "stopping $name (pid $pid)"
  signal_tree TERM "$pid"
  for ((i = 0; i < timeout * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop within ${timeout}s: sending SIGKILL"
    signal_tree KILL "$pid"
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  rm -f "$pidfile"
  log "$name stopped"
}

# kill_pid PIDFILE NAME [CMDLINE-SUBSTRING]: SIGKILL at once (a crash, for failover tests).
kill_pid() {
  local pidfile="$1" name="$2" want="${3:-}" pid i
  if ! pid_alive "$pidfile" "$want"; then
    rm -f "$pidfile"
    log "$name is not running"
    return 0
  fi
  pid="$(<"$pidfile")"
  log "killing $name (pid $pid) with SIGKILL"
  signal_tree KILL "$pid"
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  rm -f "$pidfile"
}

# start_bg PIDFILE LOGFILE CMD ARGS...: start CMD detached from this script (own session, no stdin, output
# appended to LOGFILE) and record its pid. The process outlives the calling script.
start_bg() {
  local pidfile="$1" logfile="$2"
  shift 2
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
  rm -f "$pidfile"
  # Keep one old log when the current one passes 64 MiB (test suites create many topics and groups).
  if [[ -f "$logfile" ]] && (($(stat -c %s "$logfile") > 64 * 1024 * 1024)); then
    mv -f "$logfile" "$logfile.1"
  fi
  printf '\n===== %s: starting %s\n' "$(date -Is)" "$*" >>"$logfile"
  # The inner shell writes its own pid and then exec's the command, so the pid file names the real process.
  # shellcheck disable=SC2016
  # fds 9 and 8 are take_lock's and cache_lock's: closed, or the service would hold the lock for its whole life.
  setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >>"$logfile" 2>&1 </dev/null 9>&- 8>&- &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s "$pidfile" ]] && return 0
    sleep 0.1
  done
  die "could not start $1 (no pid file $pidfile)"
}

# log_tail FILE [LINES]: print the end of a log file to stderr, for error reports.
log_tail() {
  local file="$1" n="${2:-40}"
  if [[ -f "$file" ]]; then
    printf -- '----- last %s lines of %s -----\n' "$n" "$file" >&2
    tail -n "$n" "$file" >&2
    printf -- '-----\n' >&2
  fi
}

# take_lock DIR [TIMEOUT-SECONDS]: serialize up/down of one service between concurrent callers (several test
# runs, engineers or terminals). Held on fd 9 until the script exits.
take_lock() {
  mkdir -p "$1"
  exec 9>"$1/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w "${2:-600}" 9 || die "timed out waiting for $1/.lock (another up/down still running?)"
  fi
}

# cache_lock NAME: serialize an install into the shared cache ($SLUICE_CACHE: Kafka's jars, venvs) between
# concurrent callers (a CI run beside a developer's tests, two test runs): held on fd 8 until the script exits.
# Check again after taking it whether another caller installed meanwhile.
cache_lock() {
  mkdir -p "$SLUICE_CACHE"
  exec 8>"$SLUICE_CACHE/.$1.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 1800 8 || die "timed out waiting for $SLUICE_CACHE/.$1.lock (another install still running?)"
  fi
}

# as_root CMD ARGS...: run as root, through sudo when this is not root.
as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

# ensure_rust REPO-ROOT: make `cargo` usable for the toolchain rust-toolchain.toml pins. Adds ~/.cargo/bin to PATH
# when a rustup install is there but not on PATH (a shell that has not read ~/.profile since rustup-init ran), and
# installs the pinned toolchain with its components when rustup has not got it yet (rustup 1.28 no longer does
# that on its own). Without rustup, the cargo on PATH is used as it is.
ensure_rust() {
  local root="$1" channel
  if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    export PATH
  fi
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs)"
  if command -v rustup >/dev/null 2>&1 && [[ -f "$root/rust-toolchain.toml" ]]; then
    channel="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$root/rust-toolchain.toml")"
    if [[ -n "$channel" ]] && ! rustup toolchain list | grep -q "^$channel"; then
      log "installing Rust $channel (rust-toolchain.toml) with rustup"
      rustup toolchain install "$channel" --profile minimal --component rustfmt,clippy >&2
    fi
  fi
}

# service_prefix USER: set the array SVC to the command prefix that runs a program as USER when this is root
# (databases refuse to run as root): setpriv to USER, keeping only the capability to search directories USER could
# not enter (the run dir under /root, mode 700), so the data can stay under $SLUICE_RUN_DIR. setpriv exec's, so a
# program started through it keeps the pid start_bg records. Not root: SVC is empty (run as the caller).
SVC=()
service_prefix() {
  local user="$1" cap="" bnd
  SVC=()
  [[ "$(id -u)" -eq 0 ]] || return 0
  getent passwd "$user" >/dev/null 2>&1 ||
    die "system user '$user' not found (the server's Debian package creates it: run deploy/local/setup)"
  need_cmd setpriv
  # CAP_DAC_READ_SEARCH (bit 2) if the bounding set has it, else CAP_DAC_OVERRIDE (bit 1; Docker's default set).
  bnd="$(awk '/^CapBnd:/ {print $2}' /proc/self/status 2>/dev/null || echo 0)"
  if (((16#$bnd >> 2) & 1)); then
    cap=dac_read_search
  elif (((16#$bnd >> 1) & 1)); then
    cap=dac_override
  fi
  SVC=(setpriv --reuid="$user" --regid="$user" --init-groups)
  [[ -z "$cap" ]] || SVC+=(--inh-caps="+$cap" --ambient-caps="+$cap")
  SVC+=(--)
}

# service_owner USER: the owner to give a database's files: USER when this is root, else the caller.
service_owner() {
  if [[ "$(id -u)" -eq 0 ]]; then echo "$1"; else id -un; fi
}
