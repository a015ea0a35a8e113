#!/usr/bin/env bash
# Simulated LAN (root): every node on its own "host", a network namespace with one veth on a
# private bridge; the bridge lives in a namespace of its own, and the addresses (10.77.0.0/24)
# exist only inside these namespaces. Nodes run with mDNS on, so discovery really crosses the
# (virtual) LAN. Adds `cut I` / `heal I` (host I off / back on the LAN) to the launcher commands.
# Everything it creates is removed by `stop`, and by a trap if `start` is interrupted.
set -euo pipefail

GC_KIND=lansim
GC_EXPECT_KIND=lansim
GC_DEFAULT_DIFFICULTY=12
GC_STATUS_EXTRA_HEAD='HOST         LINK'
SIM_SUBNET=10.77.0
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GC_DIR=$(realpath -m "${GOSSIPCHAIN_CLUSTER_DIR:-$here/../.lansim}")
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$here/lib/common.sh"

sim_lan_ns() { printf 'gc%slan' "$GC_SIMID"; }
sim_host_ns() { printf 'gc%sh%s' "$GC_SIMID" "$1"; }

gc_node_prefix() { GC_PREFIX=(ip netns exec "$(sim_host_ns "$1")"); }
gc_node_ip() { printf '%s.%s\n' "$SIM_SUBNET" $((10 + $1)); }

sim_link_state() {
    local flags
    flags=$(ip -n "$(sim_lan_ns)" -o link show "v$1" 2>/dev/null) || { printf 'gone'; return; }
    if [[ $flags == *"state UP"* || $flags == *",UP"* ]]; then printf 'up'; else printf 'cut'; fi
}

gc_status_extra() {
    printf '  %-12s %s' "$(gc_node_ip "$1")" "$(sim_link_state "$1")"
}

usage() {
    cat <<EOF
usage: $(basename "$0") COMMAND [ARGS]     (as root)

A LAN of N hosts (network namespaces gc<ID>h<I> on a bridge in namespace gc<ID>lan,
addresses $SIM_SUBNET.11, .12, ...), one gossipchain node per host, mDNS on.
State, data and logs live in \$GOSSIPCHAIN_CLUSTER_DIR (default: $GC_ROOT/.lansim).
The binary is \$GOSSIPCHAIN_BIN, or built with cargo (\$GOSSIPCHAIN_PROFILE).
Default difficulty: $GC_DEFAULT_DIFFICULTY (\$GOSSIPCHAIN_DIFFICULTY).

commands:
$(gc_usage_common)
  cut I               take host I off the LAN (its veth goes down)
  heal I              bring host I back on the LAN
EOF
}

sim_require_root() {
    ((EUID == 0)) || gc_die "the LAN simulation creates network namespaces and must run as root (try: sudo $0 $*)"
    gc_need ip
}

sim_ns_exists() {
    ip netns list 2>/dev/null | cut -d' ' -f1 | grep -qxF -- "$1"
}

# Create the bridge namespace and one host namespace per node.
sim_up() {
    local lan i host
    lan=$(sim_lan_ns)
    ip netns add "$lan"
    ip -n "$lan" link set lo up
    ip -n "$lan" link add br0 type bridge
    # Flood all multicast: mDNS must reach every host, whatever the snooping state.
    ip -n "$lan" link set br0 type bridge mcast_snooping 0 2>/dev/null || true
    ip -n "$lan" link set br0 up
    for ((i = 1; i <= GC_N; i++)); do
        host=$(sim_host_ns "$i")
        ip netns add "$host"
        ip -n "$host" link set lo up
        ip -n "$lan" link add "v$i" type veth peer name eth0 netns "$host"
        ip -n "$lan" link set "v$i" master br0 up
        ip -n "$host" addr add "$(gc_node_ip "$i")/24" dev eth0
        ip -n "$host" link set eth0 up
        ip -n "$host" route add 224.0.0.0/4 dev eth0
    done
}

# Remove every namespace of this simulation (with its veths and bridge), after making sure no
# process is left in one.
sim_down() {
    local ns pid t
    [[ -n ${GC_SIMID:-} ]] || return 0
    for ns in $(ip netns list 2>/dev/null | cut -d' ' -f1 | grep -E "^gc${GC_SIMID}(lan|h[0-9]+)$"); do
        # Only processes inside our own namespaces: the nodes, if stop could not end them.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            gc_info "killing leftover process $pid in $ns"
            kill -KILL "$pid" 2>/dev/null || true
        done
        for ((t = 0; t < 20; t++)); do
            [[ -z $(ip netns pids "$ns" 2>/dev/null) ]] && break
            sleep 0.1
        done
        ip netns delete "$ns" 2>/dev/null || gc_info "could not delete namespace $ns"
    done
}

sim_teardown() {
    gc_tmux_kill
    gc_stop_nodes || true
    sim_down
}

start_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ ${SIM_STARTED:-0} != 1 ]]; then
        gc_info "start did not complete: removing what it created"
        sim_teardown
        ((rc == 0)) && rc=1
    fi
    exit "$rc"
}

sim_running() {
    gc_has_state || return 1
    gc_load_state
    [[ -n ${GC_SIMID:-} ]] && sim_ns_exists "$(sim_lan_ns)"
}

sim_start() {
    sim_require_root start
    if sim_running; then
        gc_die "a simulation is running in $GC_DIR (stop it first)"
    fi
    gc_parse_start "$@"
    gc_need "$GC_PY" setsid flock
    gc_resolve_bin
    GC_BASE_PORT=4001
    GC_SIMID=$(printf '%04x' $((RANDOM % 65536)))
    while sim_ns_exists "$(sim_lan_ns)"; do GC_SIMID=$(printf '%04x' $((RANDOM % 65536))); done
    # Saved before anything is created, so that `stop` finds it even if this run is killed.
    gc_save_state
    SIM_STARTED=0
    trap start_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    sim_up
    local i
    for ((i = 1; i <= GC_N; i++)); do
        gc_start_node "$i" || gc_die "node $i failed to start (see $(gc_node_dir "$i")/err.log)"
        gc_info "node $i up on $(gc_node_ip "$i") in $(sim_host_ns "$i") (pid $(gc_node_pid "$i"))"
    done
    gc_wait_connected 15 || gc_info "not every node sees all $((GC_N - 1)) others yet"
    gc_status_table
    # Done: from here on the simulation runs until `stop`.
    SIM_STARTED=1
    trap - EXIT INT TERM
}

sim_stop() {
    gc_has_state || { echo "no simulation in $GC_DIR"; return 0; }
    sim_require_root stop
    gc_load_state
    sim_teardown
    echo "simulation stopped: nodes, namespaces, veths and bridge removed"
}

sim_cut() {
    gc_load_state
    gc_check_index "${1:-}"
    ip -n "$(sim_lan_ns)" link set "v$1" down
}

sim_heal() {
    gc_load_state
    gc_check_index "${1:-}"
    ip -n "$(sim_lan_ns)" link set "v$1" up
}

main() {
    local cmd=${1:-help}
    (($#)) && shift
    case $cmd in
        help | -h | --help)
            usage
            return 0
            ;;
    esac
    sim_require_root "$cmd"
    case $cmd in
        start)
            sim_start "$@"
            ;;
        stop) sim_stop ;;
        wipe)
            sim_stop
            if [[ -d $GC_DIR ]]; then
                [[ -f $GC_DIR/.gossipchain-cluster ]] ||
                    gc_die "$GC_DIR is not a cluster directory; not deleting it"
                rm -rf -- "$GC_DIR"
                echo "deleted $GC_DIR"
            fi
            ;;
        cut)
            sim_cut "$@"
            echo "host $1 is off the LAN"
            ;;
        heal)
            sim_heal "$@"
            echo "host $1 is back on the LAN"
            ;;
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

# demo.sh sources this file for its functions; run as a script, it dispatches a command.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
