#!/usr/bin/env bash
# The longest-valid-chain rule at work, on a simulated LAN of 4 hosts (root; runs unattended):
#   1. four nodes discover each other by mDNS; blocks and a transaction flow to all of them;
#   2. host 4 is cut off the LAN and mines a longer chain, while the others mine a shorter one
#      holding a transaction T;
#   3. host 4 comes back: every node converges on the longest chain, T returns to a mempool and
#      is mined again;
#   4. a node killed with SIGKILL restarts with its chain and catches up with what it missed.
# Prints a timeline and a one-line verdict; exits 0 only if every expectation held.
#
# Environment: DEMO_DIFFICULTY (default 10), DEMO_TIMEOUT (whole run, default 600 s),
# DEMO_KEEP=1 keeps the data and logs directory, GOSSIPCHAIN_BIN / GOSSIPCHAIN_PROFILE as for
# lansim.sh.
set -euo pipefail

if ((EUID != 0)); then
    echo "demo.sh: the demo runs on a simulated LAN of network namespaces and must run as root (try: sudo $0)" >&2
    exit 1
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEMO_DIR=$(mktemp -d "${TMPDIR:-/tmp}/gossipchain-demo.XXXXXX")
export GOSSIPCHAIN_CLUSTER_DIR=$DEMO_DIR
# shellcheck source-path=SCRIPTDIR source=lansim.sh
source "$here/lansim.sh"

D=${DEMO_DIFFICULTY:-10}
N=4
T0=$(date +%s.%N)
PASSED=0
FAILED=0
FAILURES=()
VERDICT_DONE=0
WATCHDOG=''

# --- timeline -----------------------------------------------------------------------------------

elapsed() {
    awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%6.1f", b - a }'
}

say() {
    printf '[%ss] %s  %s\n' "$(elapsed)" "$(date +%T)" "$*"
}

step() {
    printf '\n'
    say "${GC_BOLD}== $*${GC_OFF}"
}

pass() {
    PASSED=$((PASSED + 1))
    say "  ${GC_GREEN}ok${GC_OFF}    $*"
}

fail() {
    FAILED=$((FAILED + 1))
    FAILURES+=("$*")
    say "  ${GC_RED}FAIL${GC_OFF}  $*"
}

# --- talking to the nodes -----------------------------------------------------------------------

# q I COMMAND...: the node's reply (fails on error or timeout).
q() {
    local i=$1
    shift
    gc_node_cmd "$i" "${Q_TIMEOUT:-20}" "$@"
}

# f I FIELD: one field of node I's status.
f() {
    local reply
    reply=$(q "$1" status) || return 1
    gc_field "$2" <<<"$reply"
}

short() {
    printf '%s' "${1:0:10}"
}

# One line with every node's height and tip, e.g. "1:7 3f2a..  2:7 3f2a..  3:- (down)".
heights() {
    local i line='' h t
    for ((i = 1; i <= N; i++)); do
        if reply=$(q "$i" status 2>/dev/null); then
            { read -r h; read -r t; } < <(gc_field height tip <<<"$reply")
            line+="n$i h=$h $(short "$t")  "
        else
            line+="n$i down  "
        fi
    done
    say "        ${GC_DIM}${line}${GC_OFF}"
}

# wait_until SECONDS DESCRIPTION PREDICATE ARGS...: check PREDICATE until it holds or time runs
# out; one expectation either way. Fails if it did not hold: the caller says whether the
# scenario can go on (`|| true`) or not (`|| abort`).
wait_until() {
    local timeout=$1 what=$2 start=$SECONDS
    shift 2
    while :; do
        if "$@" 2>/dev/null; then
            pass "$what ($((SECONDS - start)) s)"
            return 0
        fi
        if ((SECONDS - start >= timeout)); then
            fail "$what (not within ${timeout} s)"
            return 1
        fi
        sleep 0.5
    done
}

# expect DESCRIPTION PREDICATE ARGS...: a check made once.
expect() {
    local what=$1
    shift
    if "$@" 2>/dev/null; then pass "$what"; else fail "$what"; fi
}

all_peers_at_least() {
    local i p
    for ((i = 1; i <= N; i++)); do
        p=$(f "$i" peers) || return 1
        ((p >= $1)) || return 1
    done
}

peers_are() {
    local p
    p=$(f "$1" peers) || return 1
    ((p == $2))
}

# same_tip I...: the nodes agree on one tip (printed).
same_tip() {
    local i t first=''
    for i in "$@"; do
        t=$(f "$i" tip) || return 1
        [[ -n $t ]] || return 1
        [[ -z $first ]] && first=$t
        [[ $t == "$first" ]] || return 1
    done
    printf '%s\n' "$first"
}

same_tip_quiet() {
    same_tip "$@" >/dev/null
}

all_tip_is() {
    local tip=$1 i
    shift
    [[ -n $tip ]] || return 1
    for i in "$@"; do tip_is "$i" "$tip" || return 1; done
}

all_height_at_least() {
    local h=$1 i
    shift
    for i in "$@"; do height_at_least "$i" "$h" || return 1; done
}

peers_at_least() {
    local p
    p=$(f "$1" peers) || return 1
    ((p >= $2))
}

tip_is() {
    local t
    t=$(f "$1" tip) || return 1
    [[ $t == "$2" ]]
}

height_at_least() {
    local h
    h=$(f "$1" height) || return 1
    ((h >= $2))
}

in_mempool() {
    local reply
    reply=$(q "$1" mempool) || return 1
    gc_field 'transactions[].txid' <<<"$reply" | tr ' ' '\n' | grep -qxF -- "$2"
}

in_some_mempool() {
    local txid=$1 i
    shift
    for i in "$@"; do
        if in_mempool "$i" "$txid"; then
            FOUND_IN=$i
            return 0
        fi
    done
    return 1
}

in_mempools() {
    local txid=$1 i
    shift
    for i in "$@"; do in_mempool "$i" "$txid" || return 1; done
}

not_in_mempool() {
    ! in_mempool "$1" "$2" && q "$1" mempool >/dev/null
}

# in_chain I TXID: the transaction is in one of the last 30 blocks of node I's main chain.
in_chain() {
    local reply
    reply=$(q "$1" chain 30) || return 1
    gc_field 'blocks[].transactions[].txid' <<<"$reply" | tr ' ' '\n' | grep -qxF -- "$2"
}

in_chains() {
    local txid=$1 i
    shift
    for i in "$@"; do in_chain "$i" "$txid" || return 1; done
}

not_in_chain() {
    ! in_chain "$1" "$2" && q "$1" chain 30 >/dev/null
}

# balances_are ADDRESS AMOUNT I...: every node I reports AMOUNT for ADDRESS.
balances_are() {
    local addr=$1 want=$2 i reply b
    shift 2
    for i in "$@"; do
        reply=$(q "$i" balance "$addr") || return 1
        b=$(gc_field balance <<<"$reply")
        [[ $b == "$want" ]] || return 1
    done
}

same_balances() {
    local addr=$1 i reply b first=''
    shift
    for i in "$@"; do
        reply=$(q "$i" balance "$addr") || return 1
        b=$(gc_field balance <<<"$reply")
        [[ -n $b ]] || return 1
        [[ -z $first ]] && first=$b
        [[ $b == "$first" ]] || return 1
    done
}

# events_since I EVENT OFFSET: how many EVENT lines node I printed after byte OFFSET of its log.
events_since() {
    "${GC_JSON[@]}" count-events "$(gc_node_dir "$1")/out.jsonl" "$2" "${3:-0}"
}

log_size() {
    stat -c %s "$(gc_node_dir "$1")/out.jsonl"
}

reorged_since() {
    local n
    n=$(events_since "$1" reorg "$2")
    ((n >= 1))
}

# A step the rest of the scenario depends on did not happen: no point waiting for the rest.
abort() {
    say "  stopping early: $*"
    verdict 1 "$*"
    exit 1
}

# --- verdict and cleanup ------------------------------------------------------------------------

verdict() {
    ((VERDICT_DONE)) && return
    VERDICT_DONE=1
    local total=$((PASSED + FAILED)) took
    took=$(elapsed)
    printf '\n'
    if ((FAILED == 0 && ${1:-0} == 0 && total > 0)); then
        printf '%sPASS%s: %d/%d expectations held in %ss\n' "$GC_GREEN" "$GC_OFF" "$PASSED" "$total" "${took// /}"
    elif ((${1:-0})); then
        printf '%sFAIL%s: stopped early (%s): %d of %d expectations checked held, %d failed, in %ss%s\n' \
            "$GC_RED" "$GC_OFF" "${2:-error}" "$PASSED" "$total" "$FAILED" "${took// /}" \
            "${FAILURES[0]:+; first failure: ${FAILURES[0]}}"
    else
        printf '%sFAIL%s: %d/%d expectations held, %d failed, in %ss; first failure: %s\n' \
            "$GC_RED" "$GC_OFF" "$PASSED" "$total" "$FAILED" "${took// /}" "${FAILURES[0]:-none}"
    fi
}

dump_logs() {
    local i
    for ((i = 1; i <= N; i++)); do
        [[ -f $(gc_node_dir "$i")/err.log ]] || continue
        printf -- '--- node %s: last lines of stderr (%s)\n' "$i" "$(gc_node_dir "$i")/err.log"
        tail -n 12 "$(gc_node_dir "$i")/err.log" | cut -c1-300
        printf -- '--- node %s: last events\n' "$i"
        grep '"event"' "$(gc_node_dir "$i")/out.jsonl" 2>/dev/null | tail -n 8 | cut -c1-300
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    [[ -n $WATCHDOG ]] && kill "$WATCHDOG" 2>/dev/null
    if ((INTERRUPTED)); then
        verdict 1 "interrupted"
        rc=130
    elif ((!VERDICT_DONE)); then
        verdict 1 "the script failed (status $rc)"
        ((rc == 0)) && rc=1
    fi
    if ((rc != 0)); then
        dump_logs
    fi
    if gc_has_state; then
        gc_load_state 2>/dev/null && sim_teardown >/dev/null 2>&1
    fi
    local left
    left=$(ip netns list 2>/dev/null | grep -cE "^gc${GC_SIMID:-none}(lan|h[0-9]+)( |$)" || true)
    ((left == 0)) || echo "warning: $left namespaces of this demo are left" >&2
    if [[ ${DEMO_KEEP:-0} == 1 ]]; then
        echo "data and logs kept in $DEMO_DIR"
    else
        rm -rf -- "$DEMO_DIR"
    fi
    exit "$rc"
}

INTERRUPTED=0
trap cleanup EXIT
trap 'INTERRUPTED=1; exit 130' INT TERM

# The whole run is bounded, whatever happens below.
(
    trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
    sleep "${DEMO_TIMEOUT:-600}" &
    sleeper=$!
    wait "$sleeper"
    echo "demo.sh: ${DEMO_TIMEOUT:-600} s are up" >&2
    kill -TERM $$
) </dev/null &
WATCHDOG=$!

# --- the scenario -------------------------------------------------------------------------------

step "Start $N hosts on a simulated LAN ($SIM_SUBNET.0/24), one node each, mDNS on, difficulty $D"
"$here/lansim.sh" start "$N" --difficulty "$D" </dev/null 2>&1 | sed 's/^/        /'
gc_load_state
for ((i = 1; i <= N; i++)); do
    gc_node_alive "$i" || { fail "node $i is running"; exit 1; }
done
pass "$N nodes running, each in its own network namespace"
ADDR=()
for ((i = 1; i <= N; i++)); do ADDR[i]=$(f "$i" address || true); done

step "Discovery: every node finds the 3 others by mDNS"
wait_until 30 "every node has 3 peers" all_peers_at_least 3 || abort "every node has 3 peers"

step "Blocks flow: node 1 mines 3 blocks"
r=$(Q_TIMEOUT=60 q 1 mine 3) || true
say "        node 1: $(gc_field mined height <<<"$r" | paste -sd' ' | awk '{ print "mined " $1 ", height " $2 }')"
wait_until 20 "every node is at height 3" all_height_at_least 3 1 2 3 4 || abort "every node is at height 3"
wait_until 20 "every node agrees on node 1's tip" all_tip_is "$(f 1 tip || true)" 1 2 3 4 || true
heights

step "Transactions flow: node 1 pays 10 to node 2; node 3 mines it"
r=$(q 1 tx "${ADDR[2]}" 10) || true
TX1=$(gc_field txid <<<"$r")
say "        tx $(short "$TX1")… from node 1 to node 2 (10 coins)"
if [[ -n $TX1 ]]; then
    wait_until 20 "tx $(short "$TX1") reached every mempool" in_mempools "$TX1" 1 2 3 4 || true
    Q_TIMEOUT=60 q 3 mine 1 >/dev/null || true
    wait_until 20 "node 3's block with it reached every node" in_chains "$TX1" 1 2 3 4 || true
    wait_until 10 "every node says node 2 has 10 coins" balances_are "${ADDR[2]}" 10 1 2 3 4 || true
else
    fail "node 1 accepted the transaction: $r"
fi
heights

step "Partition: host 4 is cut off the LAN"
sim_cut 4
say "        ip -n $(sim_lan_ns) link set v4 down"
r=$(q 1 tx "${ADDR[3]}" 5) || true
TX2=$(gc_field txid <<<"$r")
say "        tx T=$(short "$TX2")… from node 1 to node 3 (5 coins), sent after the cut"
if [[ -n $TX2 ]]; then
    wait_until 20 "T reached the mempools of nodes 1-3" in_mempools "$TX2" 1 2 3 || true
else
    fail "node 1 accepted the transaction T: $r"
fi
BASE=$(f 1 height || echo 0)
Q_TIMEOUT=60 q 2 mine 2 >/dev/null || true
say "        nodes 1-3 side: node 2 mined 2 blocks (with T)"
Q_TIMEOUT=60 q 4 mine 4 >/dev/null || true
say "        host 4 side: node 4 mined 4 blocks on its own"
wait_until 20 "nodes 1-3 agree on the short chain (height $((BASE + 2)))" same_tip_quiet 1 2 3 || abort "nodes 1-3 agree on the short chain"
[[ -n $TX2 ]] && expect "T is in the short chain" in_chains "$TX2" 1 2 3
[[ -n $TX2 ]] && expect "host 4 never heard of T" not_in_chain 4 "$TX2"
expect "host 4 is at height $((BASE + 4))" height_at_least 4 $((BASE + 4))
LONG_TIP=$(f 4 tip || true)
SHORT_TIP=$(f 1 tip || true)
expect "the two sides have different tips" test "$LONG_TIP" != "$SHORT_TIP"
wait_until 45 "host 4 notices it is alone (0 peers)" peers_are 4 0 || true
heights

step "Heal: host 4 comes back; the longest valid chain must win everywhere"
OFF=()
for ((i = 1; i <= 3; i++)); do OFF[i]=$(log_size "$i"); done
sim_heal 4
say "        ip -n $(sim_lan_ns) link set v4 up"
wait_until 60 "every node is on host 4's chain (tip $(short "$LONG_TIP")…)" \
    all_tip_is "$LONG_TIP" 1 2 3 4 || abort "every node is on host 4's chain"
for ((i = 1; i <= 3; i++)); do
    expect "node $i reported a reorg" reorged_since "$i" "${OFF[i]}"
done
heights

step "The abandoned transaction T returns to a mempool and is mined"
FOUND_IN=''
if [[ -n $TX2 ]]; then
    wait_until 20 "T is back in a mempool" in_some_mempool "$TX2" 1 2 3 4 || true
    MINER=${FOUND_IN:-1}
    say "        node $MINER has T in its mempool; node $MINER mines a block"
    Q_TIMEOUT=60 q "$MINER" mine 1 >/dev/null || true
    wait_until 20 "T is in the main chain of every node" in_chains "$TX2" 1 2 3 4 || true
    wait_until 20 "every node agrees on the tip" same_tip_quiet 1 2 3 4 || true
    expect "every node reports the same balance for node 3" same_balances "${ADDR[3]}" 1 2 3 4
fi
heights

step "Crash: node 2 is killed (SIGKILL), the others move on, node 2 restarts and catches up"
H2=$(f 2 height || echo 0)
gc_kill_node 2
say "        node 2 killed at height $H2"
r=$(q 1 tx "${ADDR[4]}" 1) || true
TX3=$(gc_field txid <<<"$r")
Q_TIMEOUT=60 q 3 mine 3 >/dev/null || true
wait_until 20 "nodes 1, 3 and 4 agree on a tip 3 blocks higher" same_tip_quiet 1 3 4 || true
TARGET=$(f 3 tip || true)
THEIGHT=$(f 3 height || echo 0)
say "        the others are at height $THEIGHT, tip $(short "$TARGET")…"
gc_start_node 2 || fail "node 2 restarted"
expect "node 2 restarted with its chain (height >= $H2)" height_at_least 2 "$H2"
wait_until 60 "node 2 caught up (tip $(short "$TARGET")…, height $THEIGHT)" tip_is 2 "$TARGET" || abort "node 2 caught up"
[[ -n $TX3 ]] && expect "node 2 has the transaction it missed" in_chain 2 "$TX3"
wait_until 30 "node 2 is connected again" peers_at_least 2 1 || true
heights

step "Final state"
wait_until 20 "all $N nodes on one tip" same_tip_quiet 1 2 3 4 || true
gc_status_table | sed 's/^/        /'
verdict
((FAILED == 0))
