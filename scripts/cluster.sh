#!/usr/bin/env bash
# Local gossipchain cluster: N nodes on this machine, each with its own data dir, console FIFO
# and log, running in the background until `stop`. By default they find each other by mDNS;
# with --no-mdns they listen on 127.0.0.1 and dial each other with --peer.
set -euo pipefail

GC_KIND=local
GC_EXPECT_KIND=local
GC_DEFAULT_DIFFICULTY=16
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GC_DIR=$(realpath -m "${GOSSIPCHAIN_CLUSTER_DIR:-$here/../.cluster}")
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$here/lib/common.sh"

gc_node_prefix() { GC_PREFIX=(); }
gc_node_ip() { printf '127.0.0.1\n'; }
gc_status_extra() { :; }

usage() {
    cat <<EOF
usage: $(basename "$0") COMMAND [ARGS]

Runs a gossipchain cluster on this machine. State, data and logs live in
\$GOSSIPCHAIN_CLUSTER_DIR (default: $GC_ROOT/.cluster). The binary is \$GOSSIPCHAIN_BIN,
or built with cargo (\$GOSSIPCHAIN_PROFILE: debug (default) or release).
Default difficulty: $GC_DEFAULT_DIFFICULTY (\$GOSSIPCHAIN_DIFFICULTY); ports from
\$GOSSIPCHAIN_BASE_PORT+1 (default 40101).

commands:
$(gc_usage_common)
EOF
}

start_aborted() {
    trap - INT TERM
    gc_info "start interrupted: stopping the nodes started so far"
    gc_stop_nodes || true
    exit 130
}

cmd_start() {
    if gc_has_state; then
        gc_load_state
        local i
        for ((i = 1; i <= GC_N; i++)); do
            gc_node_alive "$i" && gc_die "the cluster in $GC_DIR is running (stop it first)"
        done
    fi
    gc_parse_start "$@"
    gc_need "$GC_PY" setsid flock
    gc_resolve_bin
    GC_BASE_PORT=${GOSSIPCHAIN_BASE_PORT:-40100}
    gc_save_state
    trap start_aborted INT TERM
    local i
    for ((i = 1; i <= GC_N; i++)); do
        if ! gc_start_node "$i"; then
            gc_stop_nodes || true
            gc_die "node $i failed to start (see $(gc_node_dir "$i")/err.log)"
        fi
        gc_info "node $i up (pid $(gc_node_pid "$i"))"
    done
    gc_wait_connected 15 || gc_info "not every node sees all $((GC_N - 1)) others yet"
    gc_status_table
    trap - INT TERM
}

cmd_stop() {
    gc_has_state || { echo "no cluster in $GC_DIR"; return 0; }
    gc_load_state
    gc_tmux_kill
    gc_stop_nodes || gc_die "some nodes did not exit"
    echo "cluster stopped"
}

cmd_wipe() {
    if gc_has_state; then
        cmd_stop
    fi
    if [[ -d $GC_DIR ]]; then
        [[ -f $GC_DIR/.gossipchain-cluster ]] ||
            gc_die "$GC_DIR is not a cluster directory; not deleting it"
        rm -rf -- "$GC_DIR"
        echo "deleted $GC_DIR"
    fi
}

main() {
    local cmd=${1:-help}
    (($#)) && shift
    case $cmd in
        start) cmd_start "$@" ;;
        stop) cmd_stop ;;
        wipe) cmd_wipe ;;
        help | -h | --help) usage ;;
        *)
            if [[ $cmd =~ ^($GC_COMMON_COMMANDS)$ ]]; then
                gc_dispatch_common "$cmd" "$@"
            else
                usage >&2
                exit 64
            fi
            ;;
    esac
}

main "$@"
