//! Helpers for whole-node tests: a [`TestNode`] runs the real `gossipchain` binary with `--json`
//! and drives it through its stdin console; a [`Lan`] builds a private Ethernet segment out of
//! network namespaces so that nodes can find each other by mDNS without touching the machine's
//! real interfaces.
//!
//! Every wait here has a timeout, every process started here is killed by its own PID when its
//! handle drops, and every namespace a [`Lan`] creates is deleted when it drops.

#![allow(dead_code)] // Each test binary uses a different part of this module.

pub mod chain_writer;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Difficulty every test network uses: about a thousand hashes per block.
pub const DIFFICULTY: u32 = 10;

/// How long an ordinary console command may take to answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How many stderr lines of a node are kept to explain a failure.
const STDERR_TAIL: usize = 60;

/// How many stdout lines of a node are kept to explain a failure.
const STDOUT_TAIL: usize = 30;

/// The node binary built by cargo for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_gossipchain")
}

/// A network name no other test uses, so that parallel tests never share a genesis.
pub fn unique_network(theme: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "e2e-{theme}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// How a node is started.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// `--network`.
    pub network: String,
    /// `--difficulty`.
    pub difficulty: u32,
    /// False adds `--no-mdns`.
    pub mdns: bool,
    /// `--listen`.
    pub listen: String,
    /// `--peer`, repeated.
    pub peers: Vec<String>,
    /// `--http ADDR`, or `--no-http` if `None`.
    pub http: Option<String>,
    /// `--min-relay-fee`, or the network's default if `None`. The helper's networks are not
    /// `devnet`, whose default is 1; tests send fee-0 transfers between nodes, so the default
    /// here is `Some(0)`.
    pub min_relay_fee: Option<u64>,
    /// Anything else to pass.
    pub extra: Vec<String>,
    /// `--data-dir`, or a temporary directory of the node's own if `None`.
    pub data_dir: Option<std::path::PathBuf>,
}

impl NodeOptions {
    /// A node on 127.0.0.1 with mDNS off, on `network`.
    pub fn loopback(network: &str) -> Self {
        Self {
            network: network.to_string(),
            difficulty: DIFFICULTY,
            mdns: false,
            listen: "/ip4/127.0.0.1/tcp/0".to_string(),
            peers: Vec::new(),
            // A free port, so that parallel test nodes never race for the default one.
            http: Some("127.0.0.1:0".to_string()),
            min_relay_fee: Some(0),
            extra: Vec::new(),
            data_dir: None,
        }
    }

    fn args(&self, data_dir: &std::path::Path) -> Vec<String> {
        let mut args = vec![
            "--json".to_string(),
            "--data-dir".to_string(),
            data_dir.display().to_string(),
            "--listen".to_string(),
            self.listen.clone(),
            "--network".to_string(),
            self.network.clone(),
            "--difficulty".to_string(),
            self.difficulty.to_string(),
            "--mine-threads".to_string(),
            "1".to_string(),
        ];
        if !self.mdns {
            args.push("--no-mdns".to_string());
        }
        // Logs go to stderr, whose tail is shown when a test fails.
        args.push("--log".to_string());
        args.push(std::env::var("E2E_LOG").unwrap_or_else(|_| "info".to_string()));
        for p in &self.peers {
            args.push("--peer".to_string());
            args.push(p.clone());
        }
        match &self.http {
            Some(addr) => args.extend(["--http".to_string(), addr.clone()]),
            None => args.push("--no-http".to_string()),
        }
        if let Some(fee) = self.min_relay_fee {
            args.extend(["--min-relay-fee".to_string(), fee.to_string()]);
        }
        args.extend(self.extra.iter().cloned());
        args
    }
}

/// One line the node printed on stdout.
#[derive(Debug, Clone)]
enum Line {
    /// A JSON object, as the contract requires.
    Json(Value),
    /// Anything else: a contract violation, kept to be reported.
    Other(String),
}

/// The parts of a node that exist while its process runs.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

/// A `gossipchain` process driven through its JSON console, with its own temporary data
/// directory that outlives restarts.
pub struct TestNode {
    /// Name used in failure messages.
    pub label: String,
    /// Command words put before the binary (such as `ip netns exec NS`).
    launcher: Vec<String>,
    opts: NodeOptions,
    data_dir: tempfile::TempDir,
    running: Option<Running>,
    /// Every event printed since the node was created (across restarts).
    events: Vec<Value>,
    /// Lines on stdout that were not JSON objects.
    non_json: Vec<String>,
    /// The last stdout lines, for failure messages.
    stdout_tail: VecDeque<String>,
}

impl TestNode {
    /// Starts a node on 127.0.0.1 with mDNS off.
    pub fn start(label: &str, opts: NodeOptions) -> Self {
        Self::start_with_launcher(label, Vec::new(), opts)
    }

    /// Starts a node whose command line is prefixed by `launcher`.
    pub fn start_with_launcher(label: &str, launcher: Vec<String>, opts: NodeOptions) -> Self {
        let data_dir = tempfile::Builder::new()
            .prefix("gossipchain-e2e-")
            .tempdir()
            .unwrap_or_else(|e| panic!("{label}: cannot create a temp dir: {e}"));
        let mut node = Self {
            label: label.to_string(),
            launcher,
            opts,
            data_dir,
            running: None,
            events: Vec::new(),
            non_json: Vec::new(),
            stdout_tail: VecDeque::new(),
        };
        node.spawn();
        node
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.opts
            .data_dir
            .as_deref()
            .unwrap_or_else(|| self.data_dir.path())
    }

    /// The options the node runs with; changes apply at the next restart.
    pub fn options_mut(&mut self) -> &mut NodeOptions {
        &mut self.opts
    }

    fn spawn(&mut self) {
        assert!(self.running.is_none(), "{}: already running", self.label);
        let args = self.opts.args(self.data_dir());
        let mut cmd = if let Some((first, rest)) = self.launcher.split_first() {
            let mut c = Command::new(first);
            c.args(rest).arg(binary());
            c
        } else {
            Command::new(binary())
        };
        cmd.args(&args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{}: cannot start {}: {e}", self.label, binary()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let stdin = child.stdin.take();

        let (tx, rx) = mpsc::channel();
        let label = self.label.clone();
        thread::Builder::new()
            .name(format!("{label}-stdout"))
            .spawn(move || read_stdout(stdout, tx))
            .expect("spawn stdout reader");

        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = Arc::clone(&stderr_tail);
        thread::Builder::new()
            .name(format!("{label}-stderr"))
            .spawn(move || read_stderr(&label, stderr, tail))
            .expect("spawn stderr reader");

        self.running = Some(Running {
            child,
            stdin,
            lines: rx,
            stderr_tail,
        });
    }

    /// The process id, while the node runs.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.child.id())
    }

    /// The node's last stderr lines, for failure reports.
    fn stderr_tail(&self) -> Vec<String> {
        self.running
            .as_ref()
            .and_then(|r| {
                r.stderr_tail
                    .lock()
                    .ok()
                    .map(|t| t.iter().cloned().collect())
            })
            .unwrap_or_default()
    }

    /// Panics with `msg` and what the node printed lately.
    #[track_caller]
    pub fn fail(&self, msg: &str) -> ! {
        let stderr = self.stderr_tail();
        panic!(
            "{}: {msg}\n--- last stdout lines ---\n{}\n--- last stderr lines ---\n{}",
            self.label,
            self.stdout_tail
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
            stderr.join("\n")
        );
    }

    /// Writes one line to the node's console.
    #[track_caller]
    pub fn send(&mut self, line: &str) {
        self.send_bytes(line.as_bytes());
    }

    /// Writes raw bytes plus a newline to the node's console.
    #[track_caller]
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let Some(stdin) = self.running.as_mut().and_then(|r| r.stdin.as_mut()) else {
            self.fail("stdin is not open");
        };
        let mut buf = bytes.to_vec();
        buf.push(b'\n');
        if let Err(e) = stdin.write_all(&buf).and_then(|()| stdin.flush()) {
            self.fail(&format!("cannot write to stdin: {e}"));
        }
    }

    /// Closes the node's stdin (the console ends, the node keeps running).
    pub fn close_stdin(&mut self) {
        if let Some(r) = self.running.as_mut() {
            r.stdin = None;
        }
    }

    /// Takes the next stdout line within `deadline`, recording events; `None` on timeout.
    fn next_line(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let Some(r) = self.running.as_ref() else {
                self.fail("the node is not running");
            };
            match r.lines.recv_timeout(deadline - now) {
                Ok(Line::Json(v)) => {
                    self.remember(v.to_string());
                    if v.get("event").is_some() {
                        self.events.push(v.clone());
                    }
                    return Some(v);
                }
                Ok(Line::Other(s)) => {
                    self.remember(s.clone());
                    self.non_json.push(s);
                }
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self
                        .running
                        .as_mut()
                        .and_then(|r| r.child.try_wait().ok().flatten());
                    self.fail(&format!("stdout closed (exit status {status:?})"));
                }
            }
        }
    }

    fn remember(&mut self, line: String) {
        let mut line = line;
        if line.len() > 400 {
            line.truncate(400);
            line.push_str("...");
        }
        // Polling repeats the same status line; keep one copy so the tail stays informative.
        if self.stdout_tail.back() == Some(&line) {
            return;
        }
        self.stdout_tail.push_back(line);
        while self.stdout_tail.len() > STDOUT_TAIL {
            self.stdout_tail.pop_front();
        }
    }

    /// Sends `line` and returns the next reply, whatever its command word (for input whose
    /// command word is unclear, such as a 100 KB line).
    #[track_caller]
    pub fn request_any(&mut self, line: &[u8], timeout: Duration) -> Value {
        self.send_bytes(line);
        let deadline = Instant::now() + timeout;
        loop {
            match self.next_line(deadline) {
                Some(v) if v.get("reply").is_some() => return v,
                Some(_) => {}
                None => self.fail(&format!(
                    "no reply within {timeout:?} to {:?}",
                    String::from_utf8_lossy(&line[..line.len().min(80)])
                )),
            }
        }
    }

    /// Sends a command and returns its reply, checking that the reply names the command word.
    #[track_caller]
    pub fn request(&mut self, cmd: &str) -> Value {
        self.request_within(cmd, REQUEST_TIMEOUT)
    }

    /// [`Self::request`] with its own timeout.
    #[track_caller]
    pub fn request_within(&mut self, cmd: &str, timeout: Duration) -> Value {
        let reply = self.request_any(cmd.as_bytes(), timeout);
        let word = cmd.split_whitespace().next().unwrap_or("");
        if reply["reply"] != word {
            self.fail(&format!("reply {reply} does not name the command {word:?}"));
        }
        if reply.get("ok").and_then(Value::as_bool).is_none() {
            self.fail(&format!("reply {reply} has no boolean `ok`"));
        }
        reply
    }

    /// Sends a command that must succeed and returns its reply.
    #[track_caller]
    pub fn ok(&mut self, cmd: &str) -> Value {
        self.ok_within(cmd, REQUEST_TIMEOUT)
    }

    /// [`Self::ok`] with its own timeout.
    #[track_caller]
    pub fn ok_within(&mut self, cmd: &str, timeout: Duration) -> Value {
        let reply = self.request_within(cmd, timeout);
        if reply["ok"] != true {
            self.fail(&format!("command {cmd:?} failed: {reply}"));
        }
        reply
    }

    /// Sends a command that must fail, and returns its error message.
    #[track_caller]
    pub fn err(&mut self, cmd: &str) -> String {
        let reply = self.request(cmd);
        self.expect_error(cmd, &reply)
    }

    /// Checks that `reply` is a failure with a non-empty error message, and returns it.
    #[track_caller]
    pub fn expect_error(&self, what: &str, reply: &Value) -> String {
        if reply["ok"] != false {
            self.fail(&format!("{what:?} should have failed, got {reply}"));
        }
        match reply["error"].as_str() {
            Some(e) if !e.trim().is_empty() => e.to_string(),
            _ => self.fail(&format!(
                "{what:?} failed without an error message: {reply}"
            )),
        }
    }

    /// Every event seen so far, oldest first.
    pub fn events(&self) -> &[Value] {
        &self.events
    }

    /// Lines on stdout that were not single JSON objects.
    pub fn non_json_lines(&self) -> &[String] {
        &self.non_json
    }

    /// Reads whatever the node has printed so far without waiting.
    pub fn drain(&mut self) {
        while self
            .next_line(Instant::now() + Duration::from_millis(1))
            .is_some()
        {}
    }

    /// The first event (seen before or during the wait) for which `pred` holds.
    #[track_caller]
    pub fn wait_event(&mut self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        match self.try_wait_event(&pred, timeout) {
            Some(v) => v,
            None => self.fail(&format!("no matching event within {timeout:?}")),
        }
    }

    /// [`Self::wait_event`] that returns `None` on timeout.
    pub fn try_wait_event(
        &mut self,
        pred: &impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        if let Some(v) = self.events.iter().find(|v| pred(v)) {
            return Some(v.clone());
        }
        let deadline = Instant::now() + timeout;
        while let Some(v) = self.next_line(deadline) {
            if v.get("event").is_some() && pred(&v) {
                return Some(v);
            }
        }
        None
    }

    /// The `status` reply.
    #[track_caller]
    pub fn status(&mut self) -> Value {
        self.ok("status")
    }

    /// Polls `status` until `pred` holds and returns that status.
    #[track_caller]
    pub fn wait_until(&mut self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            last = self.status();
            if pred(&last) {
                return last;
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "status never matched within {timeout:?}; last: {last}"
                ));
            }
            // Keep reading events while waiting, so none is lost from the record.
            let _ = self.next_line(Instant::now() + Duration::from_millis(100));
        }
    }

    /// The base URL of the node's HTTP API, from its `http_listening` event.
    #[track_caller]
    pub fn http_url(&mut self) -> String {
        let event = self.wait_event(|e| e["event"] == "http_listening", REQUEST_TIMEOUT);
        match event["url"].as_str() {
            Some(url) => url.to_string(),
            None => self.fail(&format!("http_listening without a url: {event}")),
        }
    }

    /// The main chain's height.
    #[track_caller]
    pub fn height(&mut self) -> u64 {
        let s = self.status();
        s["height"]
            .as_u64()
            .unwrap_or_else(|| self.fail(&format!("status without a height: {s}")))
    }

    /// A text field of `status`, failing the test when it is missing.
    #[track_caller]
    fn status_text(&mut self, field: &str) -> String {
        let s = self.status();
        s[field]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| self.fail(&format!("status without `{field}`: {s}")))
    }

    /// The main chain's tip hash.
    #[track_caller]
    pub fn tip(&mut self) -> String {
        self.status_text("tip")
    }

    /// The node's account address.
    #[track_caller]
    pub fn address(&mut self) -> String {
        self.status_text("address")
    }

    /// The node's libp2p peer id.
    #[track_caller]
    pub fn peer_id(&mut self) -> String {
        self.status_text("peer_id")
    }

    /// The number of connected peers.
    #[track_caller]
    pub fn peer_count(&mut self) -> u64 {
        let s = self.status();
        s["peers"]
            .as_u64()
            .unwrap_or_else(|| self.fail(&format!("status without a peer count: {s}")))
    }

    /// The balance of `address` as this node sees it.
    #[track_caller]
    pub fn balance_of(&mut self, address: &str) -> u64 {
        let r = self.ok(&format!("balance {address}"));
        r["balance"]
            .as_u64()
            .unwrap_or_else(|| self.fail(&format!("balance reply without a balance: {r}")))
    }

    /// The transaction ids in the mempool.
    #[track_caller]
    pub fn mempool_txids(&mut self) -> Vec<String> {
        let r = self.ok("mempool");
        txids_of(&r["transactions"])
    }

    /// The main chain from genesis, as `chain 0..` prints it (the first 1,000 blocks at most).
    #[track_caller]
    pub fn chain(&mut self) -> Vec<Value> {
        let r = self.ok("chain 0..");
        match r["blocks"].as_array() {
            Some(b) => b.clone(),
            None => self.fail(&format!("chain reply without blocks: {r}")),
        }
    }

    /// The hash of the main-chain block at `height`.
    #[track_caller]
    pub fn hash_at(&mut self, height: u64) -> String {
        let r = self.ok(&format!("block {height}"));
        let hash = r["hash"]
            .as_str()
            .or_else(|| r["block"]["hash"].as_str())
            .map(str::to_string);
        hash.unwrap_or_else(|| self.fail(&format!("block reply without a hash: {r}")))
    }

    /// Mines `count` blocks and returns the reply (`height`, `hash`, `mined`).
    #[track_caller]
    pub fn mine(&mut self, count: u64) -> Value {
        let timeout = REQUEST_TIMEOUT + Duration::from_millis(200 * count);
        let r = self.ok_within(&format!("mine {count}"), timeout);
        if r["mined"].as_u64() != Some(count) {
            self.fail(&format!("mine {count} reported {r}"));
        }
        r
    }

    /// Signs and posts a transfer; returns its txid.
    #[track_caller]
    pub fn send_tx(&mut self, to: &str, amount: u64, fee: u64) -> String {
        let r = self.ok(&format!("tx {to} {amount} {fee}"));
        r["txid"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| self.fail(&format!("tx reply without a txid: {r}")))
    }

    /// A multiaddr other nodes can dial this node at: a listen address on `ip` (or, with
    /// `None`, on 127.0.0.1) followed by `/p2p/<peer id>`.
    #[track_caller]
    pub fn dial_addr_on(&mut self, ip: Option<&str>) -> String {
        let want = format!("/ip4/{}/", ip.unwrap_or("127.0.0.1"));
        let s = self.wait_until(
            |s| {
                s["listen"].as_array().is_some_and(|l| {
                    l.iter()
                        .any(|a| a.as_str().is_some_and(|a| a.starts_with(&want)))
                })
            },
            Duration::from_secs(10),
        );
        let listen = s["listen"]
            .as_array()
            .and_then(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .find(|a| a.starts_with(&want))
            })
            .map(str::to_string)
            .unwrap_or_default();
        let peer_id = s["peer_id"].as_str().unwrap_or_default().to_string();
        if listen.contains("/p2p/") {
            listen
        } else {
            format!("{listen}/p2p/{peer_id}")
        }
    }

    /// [`Self::dial_addr_on`] 127.0.0.1.
    #[track_caller]
    pub fn dial_addr(&mut self) -> String {
        self.dial_addr_on(None)
    }

    /// Asks this node to dial `addr`.
    #[track_caller]
    pub fn dial(&mut self, addr: &str) {
        self.ok(&format!("dial {addr}"));
    }

    /// Kills the process with SIGKILL (no chance to flush anything) and reaps it.
    pub fn kill_9(&mut self) {
        if let Some(mut r) = self.running.take() {
            // Child::kill sends SIGKILL to this child's PID only.
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }

    /// [`Self::kill_9`], then reads what the process had printed before it died (its stdout
    /// pipe keeps every line written before the kill), so that [`Self::events`] holds every
    /// event it reported.
    pub fn kill_9_and_read_rest(&mut self) {
        let Some(mut r) = self.running.take() else {
            return;
        };
        let _ = r.child.kill();
        let _ = r.child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match r.lines.recv_timeout(left) {
                Ok(line) => self.record(line),
                Err(_) => return,
            }
        }
    }

    /// Waits up to `timeout` for the process to exit on its own and returns its exit status
    /// after reading everything it printed; `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.running.as_mut()?;
            if let Ok(Some(status)) = r.child.try_wait() {
                self.kill_9_and_read_rest();
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            // Keep reading, so that a full stdout pipe never holds the process up.
            match r.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => self.record(line),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Keeps a line read from stdout: events in [`Self::events`], other lines as violations.
    fn record(&mut self, line: Line) {
        match line {
            Line::Json(v) => {
                self.remember(v.to_string());
                if v.get("event").is_some() {
                    self.events.push(v);
                }
            }
            Line::Other(s) => {
                self.remember(s.clone());
                self.non_json.push(s);
            }
        }
    }

    /// Sends `quit` and waits for the process to exit on its own.
    #[track_caller]
    pub fn quit(&mut self, timeout: Duration) {
        self.send("quit");
        let deadline = Instant::now() + timeout;
        loop {
            let Some(r) = self.running.as_mut() else {
                return;
            };
            if let Ok(Some(_)) = r.child.try_wait() {
                self.running = None;
                return;
            }
            if Instant::now() >= deadline {
                self.fail(&format!("did not exit within {timeout:?} of quit"));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the node again on the same data directory (killing it first if it still runs).
    pub fn restart(&mut self) {
        self.kill_9();
        self.spawn();
    }

    /// Runs `gossipchain <subcommand>` (such as `verify`) on this node's data directory and
    /// network, with `--json`, while the node is stopped; returns its exit status and output.
    #[track_caller]
    pub fn maintain(&mut self, subcommand: &str) -> std::process::Output {
        if self.is_alive() {
            self.fail(&format!("{subcommand} needs the node stopped"));
        }
        self.running = None;
        let output = Command::new(binary())
            .arg("--json")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--network", &self.opts.network])
            .args(["--difficulty", &self.opts.difficulty.to_string()])
            .arg(subcommand)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{}: cannot run {subcommand}: {e}", self.label));
        output
    }

    /// True while the process has not exited.
    pub fn is_alive(&mut self) -> bool {
        self.running
            .as_mut()
            .is_some_and(|r| matches!(r.child.try_wait(), Ok(None)))
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if thread::panicking() {
            // A test failed, perhaps on another node: show what this one was doing.
            let stderr = self.stderr_tail();
            eprintln!(
                "--- {} (on drop after a failure): last stderr lines ---\n{}",
                self.label,
                stderr.join("\n")
            );
        }
        self.kill_9();
    }
}

fn read_stdout(stdout: impl Read, tx: mpsc::Sender<Line>) {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                let text = text.trim_end_matches(['\n', '\r']);
                let line = match serde_json::from_str::<Value>(text) {
                    Ok(v) if v.is_object() => Line::Json(v),
                    _ => Line::Other(text.to_string()),
                };
                if tx.send(line).is_err() {
                    return;
                }
            }
        }
    }
}

/// Keeps the last lines of a node's stderr; with `E2E_LOG_DIR` set, also appends every line to
/// `<E2E_LOG_DIR>/<label>.log`, for reading a whole run afterwards.
fn read_stderr(label: &str, stderr: impl Read, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    let dir = std::env::var_os("E2E_LOG_DIR").filter(|d| !d.is_empty());
    let mut copy = dir.and_then(|dir| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(std::path::Path::new(&dir).join(format!("{label}.log")))
            .ok()
    });
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if let Some(file) = copy.as_mut() {
                    let _ = file.write_all(&buf);
                }
                if let Ok(mut t) = tail.lock() {
                    t.push_back(String::from_utf8_lossy(&buf).trim_end().to_string());
                    while t.len() > STDERR_TAIL {
                        t.pop_front();
                    }
                }
            }
        }
    }
}

/// The txids of a JSON array of transactions.
pub fn txids_of(txs: &Value) -> Vec<String> {
    txs.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["txid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The block at `height` in a `chain` reply's blocks (an empty object when absent).
pub fn block_at(blocks: &[Value], height: u64) -> Value {
    blocks
        .iter()
        .find(|b| b["height"] == height)
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()))
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with `what` after `timeout`.
#[track_caller]
pub fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("{what}: not reached within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// True when this process runs as root (needed to create network namespaces).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// Runs `ip` with `args`; panics with its stderr when it fails.
#[track_caller]
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `ip` with `args`, ignoring failure (cleanup of what may not exist).
fn ip_quiet(args: &[&str]) -> Option<String> {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Deletes namespaces `gce-<tag>-<pid>-*` left by an interrupted run whose process is gone
/// (killing what still runs inside them, all started by that run).
fn remove_stale_namespaces(tag: &str) {
    let prefix = format!("gce-{tag}-");
    let Some(list) = ip_quiet(&["netns", "list"]) else {
        return;
    };
    for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = ns.strip_prefix(&prefix) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue; // a run still going, perhaps in parallel with this one
        }
        kill_namespace_processes(ns);
        let _ = ip_quiet(&["netns", "del", ns]);
    }
}

/// Kills every process inside namespace `ns` by its PID.
fn kill_namespace_processes(ns: &str) {
    if let Some(pids) = ip_quiet(&["netns", "pids", ns]) {
        for pid in pids.split_whitespace() {
            if pid.parse::<u32>().is_ok() {
                let _ = Command::new("kill")
                    .args(["-9", pid])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// A private Ethernet segment: a bridge in a namespace of its own and one namespace per host,
/// each joined to the bridge by a veth pair and addressed in `10.231.<subnet>.0/24`, a range that
/// exists only inside these namespaces. Nothing is created in the machine's own namespace.
pub struct Lan {
    tag: String,
    subnet: u8,
    hosts: usize,
}

impl Lan {
    /// Builds a LAN of `hosts` hosts, or returns `None` (after printing why) when not root.
    /// Under CI (the `CI` variable set) a missing root is a failure, not a skip: CI must run
    /// these tests.
    /// `tag` (a few letters) and `subnet` must be unique per test; namespace names also carry
    /// this process's id, so that separate test runs never collide.
    pub fn create(tag: &str, subnet: u8, hosts: usize) -> Option<Lan> {
        if !is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but this process is not root: the mDNS tests cannot run"
            );
            eprintln!("SKIPPED: this test builds network namespaces for mDNS and must run as root");
            return None;
        }
        assert!(tag.len() <= 8, "keep LAN tags short");
        assert!(hosts < 200);
        remove_stale_namespaces(tag);
        let lan = Lan {
            tag: format!("{tag}-{}", std::process::id()),
            subnet,
            hosts,
        };
        let br = lan.bridge_ns();
        ip(&["netns", "add", &br]);
        ip(&["-n", &br, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &br,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &br, "link", "set", "br0", "up"]);
        for i in 0..hosts {
            let ns = lan.host_ns(i);
            let port = format!("v{i}");
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ]);
            ip(&["-n", &br, "link", "set", &port, "master", "br0"]);
            ip(&["-n", &br, "link", "set", &port, "up"]);
            let cidr = format!("{}/24", lan.host_ip(i));
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "route", "add", "224.0.0.0/4", "dev", "eth0"]);
        }
        Some(lan)
    }

    fn bridge_ns(&self) -> String {
        format!("gce-{}-br", self.tag)
    }

    /// The namespace of host `i`.
    pub fn host_ns(&self, i: usize) -> String {
        format!("gce-{}-h{i}", self.tag)
    }

    /// The IPv4 address of host `i`.
    pub fn host_ip(&self, i: usize) -> String {
        format!("10.231.{}.{}", self.subnet, i + 1)
    }

    /// Starts a node on host `i` with mDNS on, listening on every interface of its namespace.
    pub fn start_node(&self, i: usize, label: &str, network: &str) -> TestNode {
        let opts = NodeOptions {
            mdns: true,
            listen: "/ip4/0.0.0.0/tcp/0".to_string(),
            ..NodeOptions::loopback(network)
        };
        self.start_node_with(i, label, opts)
    }

    /// Starts a node on host `i` inside its namespace with the options given.
    pub fn start_node_with(&self, i: usize, label: &str, opts: NodeOptions) -> TestNode {
        assert!(i < self.hosts);
        let launcher = vec![
            "ip".to_string(),
            "netns".to_string(),
            "exec".to_string(),
            self.host_ns(i),
        ];
        TestNode::start_with_launcher(label, launcher, opts)
    }

    /// Cuts host `i` off the LAN: its bridge port goes down, its own interface keeps its address.
    pub fn cut(&self, i: usize) {
        ip(&[
            "-n",
            &self.bridge_ns(),
            "link",
            "set",
            &format!("v{i}"),
            "down",
        ]);
    }

    /// Brings host `i` back onto the LAN.
    pub fn restore(&self, i: usize) {
        ip(&[
            "-n",
            &self.bridge_ns(),
            "link",
            "set",
            &format!("v{i}"),
            "up",
        ]);
    }

    fn all_namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = (0..self.hosts).map(|i| self.host_ns(i)).collect();
        v.push(self.bridge_ns());
        v
    }

    /// Kills every process still inside our namespaces (all started by this LAN's tests), then
    /// deletes the namespaces, which takes their interfaces with them.
    fn delete_namespaces(&self) {
        for ns in self.all_namespaces() {
            kill_namespace_processes(&ns);
            let _ = ip_quiet(&["netns", "del", &ns]);
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.delete_namespaces();
    }
}

/// Three hours: an hour past the two a timestamp may be ahead of the local clock.
pub const THREE_HOURS_MS: u64 = 3 * 60 * 60 * 1000;

/// Milliseconds since the Unix epoch, as block timestamps count them.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// A two-thread tokio runtime for the raw peers a test drives.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
