# shellcheck shell=bash
# Shared by cluster.sh, lansim.sh and demo.sh: node processes, their consoles and the cluster
# directory. Sourced, never run.
#
# Layout of a cluster directory ($GC_DIR):
#   .gossipchain-cluster   marker: only a directory holding it is ever wiped
#   cluster.env            the settings the cluster was started with (KEY=VALUE lines)
#   node<I>/data/          the node's --data-dir
#   node<I>/stdin          FIFO: the node's console (it holds it open read-write, so never EOF)
#   node<I>/out.jsonl      the node's stdout: one JSON object per line (--json)
#   node<I>/err.log        the node's stderr (logs)
#   node<I>/pid            its process id; node<I>/peer_id its libp2p peer id
#
# A front end sets GC_KIND (local or lansim) and defines gc_node_prefix I (sets the array
# GC_PREFIX: what runs the node, such as `ip netns exec ...`) and gc_node_ip I, and sets GC_DIR.
: "${GC_DIR:?the front end sets GC_DIR}"

GC_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GC_SCRIPTS=$(dirname "$GC_LIB")
GC_ROOT=$(dirname "$GC_SCRIPTS")
# The system python3 if there is one (a version manager's shim costs a few hundred ms per call);
# -S: the helper needs nothing but the standard library, so skip site-packages.
if [[ -n ${GOSSIPCHAIN_PYTHON:-} ]]; then
    GC_PY=$GOSSIPCHAIN_PYTHON
elif [[ -x /usr/bin/python3 ]]; then
    GC_PY=/usr/bin/python3
else
    GC_PY=python3
fi
GC_JSON=("$GC_PY" -S "$GC_LIB/gcjson.py")
: "${GC_CMD_TIMEOUT:=${GOSSIPCHAIN_TIMEOUT:-30}}"
: "${GC_START_TIMEOUT:=30}"

# shellcheck disable=SC2034 # colours are used by the front ends too
if [[ -t 2 && -z ${NO_COLOR:-} ]]; then
    GC_RED=$'\e[31m' GC_GREEN=$'\e[32m' GC_DIM=$'\e[2m' GC_BOLD=$'\e[1m' GC_OFF=$'\e[0m'
else
    GC_RED='' GC_GREEN='' GC_DIM='' GC_BOLD='' GC_OFF=''
fi

gc_die() {
    printf '%s: %serror:%s %s\n' "$(basename "$0")" "$GC_RED" "$GC_OFF" "$*" >&2
    exit 1
}

gc_info() {
    printf '%s%s%s\n' "$GC_DIM" "$*" "$GC_OFF" >&2
}

gc_need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || gc_die "'$tool' is required but not installed"
    done
}

gc_is_uint() {
    [[ $1 =~ ^[0-9]+$ ]]
}

# --- cluster directory and settings ---------------------------------------------------------

gc_node_dir() {
    printf '%s/node%s' "$GC_DIR" "$1"
}

gc_has_state() {
    [[ -f $GC_DIR/.gossipchain-cluster && -f $GC_DIR/cluster.env ]]
}

gc_load_state() {
    gc_has_state || gc_die "no cluster in $GC_DIR (run: $(basename "$0") start N)"
    local key value
    while IFS='=' read -r key value; do
        case $key in
            KIND | N | MDNS | DIFFICULTY | NETWORK | BIN | BASE_PORT | SIMID | EXTRA)
                printf -v "GC_$key" '%s' "$value"
                ;;
        esac
    done <"$GC_DIR/cluster.env"
    [[ $GC_KIND == "$GC_EXPECT_KIND" ]] ||
        gc_die "$GC_DIR holds a '$GC_KIND' cluster; use the matching script"
}

gc_save_state() {
    mkdir -p "$GC_DIR"
    touch "$GC_DIR/.gossipchain-cluster"
    {
        printf 'KIND=%s\n' "$GC_KIND"
        printf 'N=%s\n' "$GC_N"
        printf 'MDNS=%s\n' "$GC_MDNS"
        printf 'DIFFICULTY=%s\n' "$GC_DIFFICULTY"
        printf 'NETWORK=%s\n' "$GC_NETWORK"
        printf 'BIN=%s\n' "$GC_BIN"
        printf 'BASE_PORT=%s\n' "$GC_BASE_PORT"
        printf 'SIMID=%s\n' "${GC_SIMID:-}"
        printf 'EXTRA=%s\n' "${GC_EXTRA:-}"
    } >"$GC_DIR/cluster.env"
}

# The node binary: $GOSSIPCHAIN_BIN, or built with cargo ($GOSSIPCHAIN_PROFILE: debug or release).
gc_resolve_bin() {
    if [[ -n ${GOSSIPCHAIN_BIN:-} ]]; then
        [[ -x $GOSSIPCHAIN_BIN ]] || gc_die "GOSSIPCHAIN_BIN=$GOSSIPCHAIN_BIN is not executable"
        GC_BIN=$(realpath "$GOSSIPCHAIN_BIN")
        return
    fi
    local profile=${GOSSIPCHAIN_PROFILE:-debug} flag=()
    [[ $profile == release ]] && flag=(--release)
    local target=${CARGO_TARGET_DIR:-$GC_ROOT/target}
    if command -v cargo >/dev/null 2>&1; then
        gc_info "building gossipchain ($profile) ..."
        cargo build --quiet "${flag[@]}" --bin gossipchain --manifest-path "$GC_ROOT/Cargo.toml" </dev/null >&2 ||
            gc_die "cargo build failed"
    fi
    [[ -x $target/$profile/gossipchain ]] ||
        gc_die "no binary at $target/$profile/gossipchain (set GOSSIPCHAIN_BIN)"
    GC_BIN=$(realpath "$target/$profile/gossipchain")
}

# --- processes --------------------------------------------------------------------------------

gc_proc_alive() {
    local state
    [[ -r /proc/$1/stat ]] || return 1
    state=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

# Whether PID is the node I that this cluster started (its command line names its data dir),
# so that a recycled PID is never signalled.
gc_pid_is_node() {
    local pid=$1 i=$2
    gc_proc_alive "$pid" || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$(gc_node_dir "$i")/data"
}

# Print the PID of node I if it is running.
gc_node_pid() {
    local pidfile pid
    pidfile=$(gc_node_dir "$1")/pid
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile")
    gc_is_uint "$pid" || return 1
    gc_pid_is_node "$pid" "$1" || return 1
    printf '%s\n' "$pid"
}

gc_node_alive() {
    gc_node_pid "$1" >/dev/null
}

# The arguments that join node I to the others (listen address, --peer, --no-mdns).
gc_node_net_args() {
    local i=$1 j peer
    GC_NET_ARGS=(--listen "/ip4/$(gc_listen_ip "$i")/tcp/$(gc_node_port "$i")")
    if [[ $GC_MDNS == 0 ]]; then
        GC_NET_ARGS+=(--no-mdns)
        for ((j = 1; j <= GC_N; j++)); do
            ((j == i)) && continue
            peer=$(cat "$(gc_node_dir "$j")/peer_id" 2>/dev/null) || continue
            GC_NET_ARGS+=(--peer "/ip4/$(gc_node_ip "$j")/tcp/$(gc_node_port "$j")/p2p/$peer")
        done
    fi
}

gc_node_port() {
    if [[ $GC_KIND == lansim ]]; then
        printf '%s\n' "$GC_BASE_PORT"
    else
        printf '%s\n' $((GC_BASE_PORT + $1))
    fi
}

# The HTTP API address of node I: a port of its own on 127.0.0.1. On the simulated LAN every
# host has its own loopback, so every node there uses the same port (reach it with
# `ip netns exec HOST curl ...`).
gc_http_addr() {
    if [[ $GC_KIND == lansim ]]; then
        printf '127.0.0.1:8645\n'
    else
        printf '127.0.0.1:%s\n' $((GC_BASE_PORT + 1000 + $1))
    fi
}

# The URL node I announced for its HTTP API (its last http_listening event), or "-".
gc_http_url() {
    local line
    line=$(grep -F '"event":"http_listening"' "$(gc_node_dir "$1")/out.jsonl" 2>/dev/null | tail -n 1) || true
    if [[ -n $line ]]; then
        gc_field url <<<"$line" 2>/dev/null || printf -- '-'
    else
        printf -- '-'
    fi
}

gc_listen_ip() {
    if [[ $GC_KIND == local && $GC_MDNS == 0 ]]; then
        printf '127.0.0.1\n'
    else
        printf '0.0.0.0\n'
    fi
}

# Start node I in the background and wait until its console answers.
gc_start_node() {
    local i=$1 d pid extra=()
    d=$(gc_node_dir "$i")
    gc_node_alive "$i" && gc_die "node $i is already running"
    mkdir -p "$d/data"
    [[ -p $d/stdin ]] || { rm -f "$d/stdin" && mkfifo "$d/stdin"; }
    touch "$d/out.jsonl" "$d/err.log"
    gc_node_prefix "$i"
    gc_node_net_args "$i"
    # shellcheck disable=SC2206 # EXTRA holds extra node arguments, split on spaces on purpose
    [[ -n ${GC_EXTRA:-} ]] && extra=($GC_EXTRA)
    # Several nodes share this machine's cores: one mining thread each, if the node has the flag.
    if [[ -z ${GC_THREADS_FLAG+set} ]]; then
        GC_THREADS_FLAG=()
        if "$GC_BIN" --help 2>/dev/null </dev/null | grep -q -- '--mine-threads'; then
            GC_THREADS_FLAG=(--mine-threads "${GOSSIPCHAIN_MINE_THREADS:-1}")
        fi
    fi
    # Each node serves its HTTP API on a port of its own, if the node has the flag.
    if [[ -z ${GC_HTTP_SUPPORTED+set} ]]; then
        GC_HTTP_SUPPORTED=0
        if "$GC_BIN" --help 2>/dev/null </dev/null | grep -q -- '--http '; then
            GC_HTTP_SUPPORTED=1
        fi
    fi
    local http=()
    ((GC_HTTP_SUPPORTED)) && http=(--http "$(gc_http_addr "$i")")
    # The node holds its own FIFO open read-write: its stdin never reaches EOF, and a writer
    # never blocks opening it. Until the node has opened it, this script holds it open too:
    # a FIFO drops what was written to it when its last reader and writer close, so without
    # this a first command written before the node opened its stdin would be lost.
    # setsid: a Ctrl-C meant for this script does not reach the node.
    local keep reply
    exec {keep}<>"$d/stdin"
    setsid "${GC_PREFIX[@]}" "$GC_BIN" --data-dir "$d/data" --json \
        --network "$GC_NETWORK" --difficulty "$GC_DIFFICULTY" "${GC_NET_ARGS[@]}" "${GC_THREADS_FLAG[@]}" "${http[@]}" "${extra[@]}" \
        <>"$d/stdin" >>"$d/out.jsonl" 2>>"$d/err.log" {keep}<&- &
    pid=$!
    printf '%s\n' "$pid" >"$d/pid"
    if ! reply=$(gc_node_cmd_pid "$i" "$pid" "$GC_START_TIMEOUT" status); then
        exec {keep}<&-
        gc_info "node $i did not answer 'status' within ${GC_START_TIMEOUT}s; last output and log lines:"
        tail -n 5 "$d/out.jsonl" >&2
        tail -n 15 "$d/err.log" >&2
        gc_proc_alive "$pid" && kill -KILL "$pid" 2>/dev/null
        return 1
    fi
    exec {keep}<&-
    gc_field peer_id <<<"$reply" >"$d/peer_id"
    # If a wrapper forked instead of exec'ing, record the node's own PID.
    if ! gc_pid_is_node "$pid" "$i"; then
        local child
        for child in $(pgrep -P "$pid" 2>/dev/null); do
            gc_pid_is_node "$child" "$i" && printf '%s\n' "$child" >"$d/pid"
        done
    fi
}

# Print one field (or several, one per line) of the JSON object on stdin.
gc_field() {
    "${GC_JSON[@]}" get "$@"
}

# Send a line to node I's console (it never blocks: the FIFO is opened read-write).
gc_node_send() {
    local d
    d=$(gc_node_dir "$1")
    printf '%s\n' "$2" 1<>"$d/stdin"
}

# Send a console command to node I and print its reply line (the next {"reply": WORD} line).
# Status: 0 ok, 1 ok=false, 2 timeout, 3 node exited, 4 node not running.
gc_node_cmd() {
    local i=$1 timeout=$2 pid
    shift 2
    pid=$(gc_node_pid "$i") || {
        printf '{"reply":"%s","ok":false,"error":"node %s is not running"}\n' "${1:-}" "$i"
        return 4
    }
    gc_node_cmd_pid "$i" "$pid" "$timeout" "$@"
}

gc_node_cmd_pid() {
    local i=$1 pid=$2 timeout=$3 d off line word rc
    shift 3
    line="$*"
    read -r word _ <<<"$line"
    [[ -n ${line// /} ]] || gc_die "empty command"
    [[ $line != *$'\n'* ]] || gc_die "a command is one line"
    d=$(gc_node_dir "$i")
    # One command at a time per node, so that each reply goes to the one who asked.
    exec {lockfd}>>"$d/lock"
    flock -w "$timeout" "$lockfd" || { exec {lockfd}>&-; return 2; }
    off=$(stat -c %s "$d/out.jsonl")
    gc_node_send "$i" "$line"
    rc=0
    "${GC_JSON[@]}" wait-reply "$d/out.jsonl" "$off" "$word" "$timeout" "$pid" || rc=$?
    exec {lockfd}>&-
    return "$rc"
}

# Ask node I to quit; SIGTERM after GRACE seconds, SIGKILL after twice that.
gc_stop_nodes() {
    local grace=${GC_STOP_GRACE:-10} i pid t
    local -A pids=()
    for ((i = 1; i <= GC_N; i++)); do
        if pid=$(gc_node_pid "$i"); then
            pids[$i]=$pid
            gc_node_send "$i" quit
        fi
    done
    ((${#pids[@]})) || return 0
    for phase in quit TERM KILL; do
        if [[ $phase != quit ]]; then
            for i in "${!pids[@]}"; do
                if gc_pid_is_node "${pids[$i]}" "$i"; then
                    gc_info "node $i did not exit after ${phase/TERM/quit}; sending SIG$phase"
                    kill "-$phase" "${pids[$i]}" 2>/dev/null
                fi
            done
        fi
        for ((t = 0; t < grace * 10; t++)); do
            for i in "${!pids[@]}"; do
                gc_proc_alive "${pids[$i]}" || unset "pids[$i]"
            done
            ((${#pids[@]})) || return 0
            sleep 0.1
        done
    done
    ((${#pids[@]} == 0))
}

gc_stop_node() {
    local i=$1 pid t rc=0
    pid=$(gc_node_pid "$i") || return 0
    gc_node_send "$i" quit
    for ((t = 0; t < ${GC_STOP_GRACE:-10} * 10; t++)); do
        gc_proc_alive "$pid" || return 0
        sleep 0.1
    done
    gc_info "node $i did not quit; sending SIGTERM"
    kill -TERM "$pid" 2>/dev/null
    for ((t = 0; t < ${GC_STOP_GRACE:-10} * 10; t++)); do
        gc_proc_alive "$pid" || return 0
        sleep 0.1
    done
    gc_info "node $i ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null
    sleep 0.2
    gc_proc_alive "$pid" && rc=1
    return "$rc"
}

gc_kill_node() {
    local pid t
    pid=$(gc_node_pid "$1") || gc_die "node $1 is not running"
    kill -KILL "$pid"
    for ((t = 0; t < 50; t++)); do
        gc_proc_alive "$pid" || return 0
        sleep 0.1
    done
    gc_die "node $1 (pid $pid) survived SIGKILL"
}

# --- what users see ---------------------------------------------------------------------------

# One status line per node, as a table. Extra columns come from gc_status_extra I (if defined).
gc_status_table() {
    local i reply fields height tip peers mempool peer pid row='%-5s %-8s %-7s %-6s %-14s %-6s %-8s %-22s %s\n'
    # shellcheck disable=SC2059 # the format is the fixed row above
    printf "$row" NODE PID STATE HEIGHT TIP PEERS MEMPOOL HTTP "PEER ID${GC_STATUS_EXTRA_HEAD:+  $GC_STATUS_EXTRA_HEAD}"
    for ((i = 1; i <= GC_N; i++)); do
        if ! pid=$(gc_node_pid "$i"); then
            # shellcheck disable=SC2059
            printf "$row" "$i" - down - - - - - "$(gc_short_peer "$i")$(gc_status_extra "$i")"
            continue
        fi
        if reply=$(gc_node_cmd "$i" 5 status); then
            fields=$(gc_field height tip peers mempool peer_id <<<"$reply")
            { read -r height; read -r tip; read -r peers; read -r mempool; read -r peer; } <<<"$fields"
            # shellcheck disable=SC2059
            printf "$row" "$i" "$pid" up "$height" "${tip:0:12}" "$peers" "$mempool" "$(gc_http_url "$i")" "…${peer: -8}$(gc_status_extra "$i")"
        else
            # shellcheck disable=SC2059
            printf "$row" "$i" "$pid" silent - - - - "$(gc_http_url "$i")" "$(gc_short_peer "$i")$(gc_status_extra "$i")"
        fi
    done
}

gc_short_peer() {
    local peer
    peer=$(cat "$(gc_node_dir "$1")/peer_id" 2>/dev/null) || { printf -- '-'; return; }
    printf '…%s' "${peer: -8}"
}

# Interactive console of node I: each line you type is sent as a command and its reply printed;
# the node's events are shown as they come (replies to other clients are not).
gc_attach() {
    local i=$1 d pid followpid line
    d=$(gc_node_dir "$i")
    pid=$(gc_node_pid "$i") || gc_die "node $i is not running"
    printf '%snode %s console: commands as in "help"; Ctrl-D or "detach" leaves the node running, "quit" stops it%s\n' "$GC_BOLD" "$i" "$GC_OFF"
    "${GC_JSON[@]}" follow "$d/out.jsonl" "$pid" &
    followpid=$!
    # shellcheck disable=SC2064 # expand now: the PID is known now
    trap "kill $followpid 2>/dev/null" EXIT
    while IFS= read -r -e -p "node$i> " line; do
        [[ -z ${line// /} ]] && continue
        [[ $line == detach ]] && break
        history -s -- "$line"
        gc_node_alive "$i" || { echo "node $i has exited"; break; }
        gc_node_cmd_pid "$i" "$pid" "${GC_ATTACH_TIMEOUT:-3600}" "$line" || true
        gc_proc_alive "$pid" || { echo "node $i has exited"; break; }
    done
    kill "$followpid" 2>/dev/null
    wait "$followpid" 2>/dev/null
    trap - EXIT
}

# Wait until every running node reports the same tip (at most SECONDS); print the tip.
gc_converge() {
    local timeout=$1 deadline tips i reply tip
    deadline=$((SECONDS + timeout))
    while :; do
        tips=()
        for ((i = 1; i <= GC_N; i++)); do
            gc_node_alive "$i" || continue
            reply=$(gc_node_cmd "$i" 5 status) || { tips+=("?"); continue; }
            tip=$(gc_field tip <<<"$reply")
            tips+=("$tip")
        done
        if ((${#tips[@]})) && [[ $(printf '%s\n' "${tips[@]}" | sort -u | wc -l) == 1 && ${tips[0]} != "?" ]]; then
            printf '%s\n' "${tips[0]}"
            return 0
        fi
        ((SECONDS >= deadline)) && return 1
        sleep 0.5
    done
}

# Wait until every node has a peer count of N-1 (at most SECONDS); 1 if that did not happen.
gc_wait_connected() {
    local timeout=$1 deadline i reply peers ok
    deadline=$((SECONDS + timeout))
    while :; do
        ok=1
        for ((i = 1; i <= GC_N; i++)); do
            reply=$(gc_node_cmd "$i" 5 status) || { ok=0; break; }
            peers=$(gc_field peers <<<"$reply")
            gc_is_uint "$peers" && ((peers >= GC_N - 1)) || { ok=0; break; }
        done
        ((ok)) && return 0
        ((SECONDS >= deadline)) && return 1
        sleep 0.3
    done
}

gc_tmux_session() {
    printf 'gossipchain-%s' "$(printf '%s' "$GC_DIR" | cksum | cut -d' ' -f1)"
}

# tmux: one pane per node's console, plus one pane that refreshes the status table.
gc_tmux() {
    gc_need tmux
    local session i self
    session=$(gc_tmux_session)
    self=$(realpath "$0")
    if ! tmux has-session -t "$session" 2>/dev/null; then
        tmux new-session -d -s "$session" -n cluster \
            "GOSSIPCHAIN_CLUSTER_DIR='$GC_DIR' '$self' watch"
        for ((i = 1; i <= GC_N; i++)); do
            tmux split-window -t "$session:cluster" \
                "GOSSIPCHAIN_CLUSTER_DIR='$GC_DIR' '$self' attach $i; echo '[console closed]'; sleep 3"
            tmux select-layout -t "$session:cluster" tiled >/dev/null
        done
        tmux set-option -t "$session" remain-on-exit off >/dev/null
    fi
    if [[ -t 0 && -t 1 ]]; then
        if [[ -n ${TMUX:-} ]]; then
            tmux switch-client -t "$session"
        else
            tmux attach-session -t "$session"
        fi
    else
        echo "tmux session '$session' is running: tmux attach -t $session"
    fi
}

gc_tmux_kill() {
    command -v tmux >/dev/null 2>&1 || return 0
    local session
    session=$(gc_tmux_session)
    tmux has-session -t "$session" 2>/dev/null && tmux kill-session -t "$session"
    return 0
}

# Refresh the status table every 2 seconds (until interrupted or the cluster is gone).
gc_watch() {
    while gc_has_state; do
        local table
        table=$(gc_status_table 2>&1)
        clear 2>/dev/null || true
        printf '%s  %s\n\n%s\n' "$(date +%T)" "$GC_DIR" "$table"
        sleep 2
    done
}

gc_usage_common() {
    cat <<EOF
  start N [--no-mdns] [--difficulty D] [--network NAME] [-- NODE ARGS...]
                      start N nodes in the background (existing data dirs are kept)
  cmd I COMMAND...    send one console command to node I and print its JSON reply
                      (exit 0 if ok, 1 if not, 2 on timeout; \$GOSSIPCHAIN_TIMEOUT seconds)
  status              table of every node: height, tip, peers, mempool, HTTP API URL
  converge [SECS]     wait until every running node has the same tip (default 30 s)
  attach I            interactive console of node I (Ctrl-D detaches, the node keeps running)
  logs I [LINES]      the end of node I's stdout (JSON) and stderr (logs)
  kill I              SIGKILL node I
  restart I           (re)start node I with the same data dir
  tmux                one tmux pane per node console, plus a status pane
  watch               refresh the status table every 2 s
  stop                quit every node (SIGTERM, then SIGKILL, only if needed)
  wipe                stop, then delete the cluster directory
EOF
}

gc_logs() {
    local d
    d=$(gc_node_dir "$1")
    [[ -d $d ]] || gc_die "no node $1"
    echo "== $d/out.jsonl"
    tail -n "${2:-20}" "$d/out.jsonl"
    echo "== $d/err.log"
    tail -n "${2:-20}" "$d/err.log"
}

gc_check_index() {
    if ! gc_is_uint "$1" || (($1 < 1 || $1 > GC_N)); then
        gc_die "no node '$1' (nodes are 1..$GC_N)"
    fi
}

# Parse `start` options into GC_N, GC_MDNS, GC_DIFFICULTY, GC_NETWORK, GC_EXTRA.
gc_parse_start() {
    GC_N=${1:-}
    if ! gc_is_uint "$GC_N" || ((GC_N < 1 || GC_N > 64)); then
        gc_die "start needs a node count N (1..64)"
    fi
    shift
    GC_MDNS=1
    GC_DIFFICULTY=${GOSSIPCHAIN_DIFFICULTY:-$GC_DEFAULT_DIFFICULTY}
    GC_NETWORK=${GOSSIPCHAIN_NETWORK:-devnet}
    GC_EXTRA=''
    while (($#)); do
        case $1 in
            --no-mdns) GC_MDNS=0 ;;
            --difficulty)
                gc_is_uint "${2:-}" || gc_die "--difficulty needs a number"
                GC_DIFFICULTY=$2
                shift
                ;;
            --network)
                [[ ${2:-} =~ ^[A-Za-z0-9._-]+$ ]] || gc_die "--network needs a name"
                GC_NETWORK=$2
                shift
                ;;
            --)
                shift
                GC_EXTRA="$*"
                break
                ;;
            *) gc_die "unknown start option '$1'" ;;
        esac
        shift
    done
}

# shellcheck disable=SC2034 # used by the front ends
GC_COMMON_COMMANDS='cmd|status|converge|attach|logs|kill|restart|tmux|watch'

# The commands both launchers share (GC_COMMON_COMMANDS).
gc_dispatch_common() {
    local cmd=$1
    shift
    case $cmd in
        cmd)
            gc_load_state
            (($# >= 2)) || gc_die "usage: cmd I COMMAND..."
            gc_check_index "$1"
            local i=$1 rc=0
            shift
            gc_node_cmd "$i" "$GC_CMD_TIMEOUT" "$@" || rc=$?
            ((rc == 2)) && gc_info "no reply from node $i within ${GC_CMD_TIMEOUT}s"
            ((rc == 3)) && gc_info "node $i exited"
            return "$rc"
            ;;
        status)
            gc_load_state
            gc_status_table
            ;;
        converge)
            gc_load_state
            gc_converge "${1:-30}" || gc_die "the nodes did not agree on a tip within ${1:-30}s"
            ;;
        attach)
            gc_load_state
            gc_check_index "${1:-}"
            gc_attach "$1"
            ;;
        logs)
            gc_load_state
            gc_check_index "${1:-}"
            gc_logs "$1" "${2:-20}"
            ;;
        kill)
            gc_load_state
            gc_check_index "${1:-}"
            gc_kill_node "$1"
            echo "node $1 killed (SIGKILL)"
            ;;
        restart)
            gc_load_state
            gc_check_index "${1:-}"
            gc_stop_node "$1"
            gc_start_node "$1" || gc_die "node $1 failed to start"
            echo "node $1 restarted (pid $(gc_node_pid "$1"))"
            ;;
        tmux)
            gc_load_state
            gc_tmux
            ;;
        watch)
            gc_load_state
            gc_watch
            ;;
        *) return 1 ;;
    esac
}
