//! The console: stdin lines become commands to the node; replies and events are printed for
//! people or, with `--json`, as one JSON object per stdout line.
//!
//! Rules it keeps: a line is read up to [`MAX_LINE_BYTES`] and the rest of it is skipped, so no
//! input can exhaust memory; every malformed line gets a reply with `ok: false` and an error
//! (naming the line's first word), and the console carries on; end of input closes the console
//! but not the node.

use std::fmt::Write as _;
use std::io::{BufRead, Write as _};

use libp2p::Multiaddr;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, mpsc};

use crate::ledger::{Address, BlockHash};
use crate::node::command::{DEFAULT_CHAIN_BLOCKS, MAX_CHAIN_REPLY_BLOCKS};
use crate::node::event::{BlockView, TxView};
use crate::node::{BlockQuery, ChainWindow, CommandError, Event, NodeHandle};

/// Longest line the console reads; longer lines are refused whole.
pub const MAX_LINE_BYTES: usize = 4096;

/// Longest first word echoed back in a reply, in characters.
pub const MAX_WORD_CHARS: usize = 64;

/// A parsed console line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleCommand {
    /// List the commands.
    Help,
    /// Show the node's status.
    Status,
    /// List connected peers.
    Peers,
    /// Send coins.
    Tx {
        /// Receiver.
        to: Address,
        /// Coins.
        amount: u64,
        /// Fee (0 if not given).
        fee: u64,
    },
    /// Record a post (a zero-amount transfer to this node's account with the post as memo).
    Post {
        /// Who wrote it.
        author: String,
        /// What it says: the rest of the line, words joined by single spaces.
        content: String,
    },
    /// Mine this many blocks.
    Mine(u64),
    /// Turn continuous mining on or off.
    Automine(bool),
    /// Show a window of the main chain.
    Chain(ChainWindow),
    /// Show one block.
    Block(BlockQuery),
    /// Show a balance (this node's if `None`).
    Balance(Option<Address>),
    /// Show pending transactions.
    Mempool,
    /// Connect to a peer.
    Dial(Multiaddr),
    /// Stop the node.
    Quit,
}

/// One console command: its usage line (the first word is the command's word, `<arg>` and
/// plain words are required, `[arg]` optional), what it does, and how its arguments parse.
/// Bounds that protect the node are not here but in [`NodeHandle`], so every front end has them.
pub struct CommandSpec {
    /// Usage line, e.g. `tx <address> <amount> [fee]`.
    pub usage: &'static str,
    /// What the command does, for `help`.
    pub about: &'static str,
    parse: fn(&Args) -> Result<ConsoleCommand, String>,
}

impl CommandSpec {
    /// The word that names the command.
    pub fn word(&self) -> &'static str {
        self.usage.split_whitespace().next().unwrap_or_default()
    }

    /// True when the last argument (`<name...>`) takes the rest of the line.
    fn takes_rest(&self) -> bool {
        self.usage.ends_with("...>")
    }

    /// How many arguments the command needs, and how many more it may take.
    fn arity(&self) -> (usize, usize) {
        let args = self.usage.split_whitespace().skip(1);
        let optional = args.clone().filter(|a| a.starts_with('[')).count();
        (args.count() - optional, optional)
    }
}

/// Every console command, in the order `help` lists them.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        usage: "help",
        about: "this list",
        parse: |_| Ok(ConsoleCommand::Help),
    },
    CommandSpec {
        usage: "status",
        about: "network, peer id, address, height, tip, peers, mempool, listen addresses",
        parse: |_| Ok(ConsoleCommand::Status),
    },
    CommandSpec {
        usage: "peers",
        about: "connected peers with their addresses and tip heights",
        parse: |_| Ok(ConsoleCommand::Peers),
    },
    CommandSpec {
        usage: "tx <address> <amount> [fee]",
        about: "send coins from this node's account",
        parse: |a| {
            Ok(ConsoleCommand::Tx {
                to: a.address(0)?,
                amount: a.number(1, "amount")?,
                fee: a.optional(2, |a| a.number(2, "fee"))?.unwrap_or(0),
            })
        },
    },
    CommandSpec {
        usage: "post <author> <content...>",
        about: "record a post on the chain (zero coins to this node's account, the post as memo)",
        parse: |a| {
            Ok(ConsoleCommand::Post {
                author: a.get(0).to_string(),
                content: a.words[1..].join(" "),
            })
        },
    },
    CommandSpec {
        usage: "mine [count]",
        about: "mine count blocks (default 1) and answer when done",
        parse: |a| {
            let count = a.optional(0, |a| a.number(0, "count"))?;
            Ok(ConsoleCommand::Mine(count.unwrap_or(1)))
        },
    },
    CommandSpec {
        usage: "automine on|off",
        about: "keep mining until told to stop",
        parse: |a| match a.get(0) {
            "on" => Ok(ConsoleCommand::Automine(true)),
            "off" => Ok(ConsoleCommand::Automine(false)),
            _ => Err(a.usage()),
        },
    },
    CommandSpec {
        usage: "chain [count|from..|from..to]",
        about: "the last count blocks of the main chain (default 20), or heights from..to (both included); at most 1,000 blocks or about 1 MB per reply",
        parse: |a| {
            let window = a.optional(0, |a| match a.get(0).split_once("..") {
                Some((from, to)) => Ok(ChainWindow::Range {
                    from: from
                        .parse()
                        .map_err(|_| format!("from must be a whole number, got '{}'", clip(from)))?,
                    to: match to {
                        "" => None,
                        to => Some(to.parse().map_err(|_| {
                            format!("to must be a whole number, got '{}'", clip(to))
                        })?),
                    },
                }),
                None => a.number(0, "count").map(ChainWindow::Latest),
            })?;
            Ok(ConsoleCommand::Chain(
                window.unwrap_or(ChainWindow::Latest(DEFAULT_CHAIN_BLOCKS)),
            ))
        },
    },
    CommandSpec {
        usage: "block <height|hash>",
        about: "one block with its transactions",
        parse: |a| {
            let arg = a.get(0);
            let query = if arg.len() == 64 {
                let hash = arg
                    .parse::<BlockHash>()
                    .map_err(|e| format!("bad block hash: {e}"))?;
                BlockQuery::Hash(hash)
            } else {
                let height = arg.parse::<u64>().map_err(|_| {
                    format!(
                        "expected a height or a 64-digit block hash, got '{}'",
                        clip(arg)
                    )
                })?;
                BlockQuery::Height(height)
            };
            Ok(ConsoleCommand::Block(query))
        },
    },
    CommandSpec {
        usage: "balance [address]",
        about: "an account's balance (default this node's)",
        parse: |a| Ok(ConsoleCommand::Balance(a.optional(0, |a| a.address(0))?)),
    },
    CommandSpec {
        usage: "mempool",
        about: "pending transactions",
        parse: |_| Ok(ConsoleCommand::Mempool),
    },
    CommandSpec {
        usage: "dial <multiaddr>",
        about: "connect to a peer",
        parse: |a| {
            let arg = a.get(0);
            let addr = arg
                .parse::<Multiaddr>()
                .map_err(|e| format!("bad multiaddr '{}': {e}", clip(arg)))?;
            Ok(ConsoleCommand::Dial(addr))
        },
    },
    CommandSpec {
        usage: "quit",
        about: "stop the node",
        parse: |_| Ok(ConsoleCommand::Quit),
    },
];

/// A command's arguments, already counted against its usage line.
pub struct Args<'a> {
    spec: &'a CommandSpec,
    words: Vec<&'a str>,
}

impl Args<'_> {
    /// Argument `i`, which the arity check guarantees for required arguments.
    fn get(&self, i: usize) -> &str {
        self.words.get(i).copied().unwrap_or_default()
    }

    /// Parses argument `i` with `f` when it was given.
    fn optional<T>(
        &self,
        i: usize,
        f: impl FnOnce(&Self) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        if i < self.words.len() {
            f(self).map(Some)
        } else {
            Ok(None)
        }
    }

    fn number(&self, i: usize, what: &str) -> Result<u64, String> {
        let s = self.get(i);
        s.parse::<u64>()
            .map_err(|_| format!("{what} must be a whole number, got '{}'", clip(s)))
    }

    fn address(&self, i: usize) -> Result<Address, String> {
        let s = self.get(i);
        s.parse::<Address>()
            .map_err(|e| format!("bad address '{}': {e}", clip(s)))
    }

    fn usage(&self) -> String {
        format!("usage: {}", self.spec.usage)
    }
}

/// A console line understood: which command, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The command's word, echoed as the reply's `reply` field.
    pub word: &'static str,
    /// The command.
    pub command: ConsoleCommand,
}

/// Why a console line is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// The line's first word, echoed as the reply's `reply` field.
    pub word: String,
    /// What was wrong.
    pub message: String,
}

fn first_word(line: &str) -> String {
    line.split_whitespace()
        .next()
        .unwrap_or_default()
        .chars()
        .take(MAX_WORD_CHARS)
        .collect()
}

/// Parses one line against [`COMMANDS`]. Blank lines are `Ok(None)`.
///
/// # Errors
/// [`ParseError`] for an unknown command, a missing, extra or malformed argument.
pub fn parse(line: &str) -> Result<Option<Parsed>, ParseError> {
    let mut words = line.split_whitespace();
    let Some(word) = words.next() else {
        return Ok(None);
    };
    let fail = |message: String| ParseError {
        word: first_word(line),
        message,
    };
    let Some(spec) = COMMANDS.iter().find(|spec| spec.word() == word) else {
        return Err(fail(format!(
            "unknown command '{}' (try help)",
            first_word(line)
        )));
    };
    let args = Args {
        spec,
        words: words.collect(),
    };
    let (required, optional) = spec.arity();
    let too_many = !spec.takes_rest() && args.words.len() > required + optional;
    if args.words.len() < required || too_many {
        return Err(fail(args.usage()));
    }
    let command = (spec.parse)(&args).map_err(fail)?;
    Ok(Some(Parsed {
        word: spec.word(),
        command,
    }))
}

/// Shortens user input quoted in an error.
fn clip(s: &str) -> String {
    if s.chars().count() > MAX_WORD_CHARS {
        format!("{}...", s.chars().take(MAX_WORD_CHARS).collect::<String>())
    } else {
        s.to_string()
    }
}

/// A line read from input: whole, or cut at the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line, without its newline.
    Text(String),
    /// A line longer than the cap; its first [`MAX_LINE_BYTES`] bytes.
    TooLong(String),
}

/// Reads lines from `input`, keeping at most `max` bytes of each, and hands them to `deliver`
/// until input ends or `deliver` returns false.
pub fn read_lines(mut input: impl BufRead, max: usize, mut deliver: impl FnMut(Line) -> bool) {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let (done, used) = match input.fill_buf() {
            Ok([]) => break,
            Ok(buf) => {
                let end = buf.iter().position(|&b| b == b'\n');
                let chunk = &buf[..end.unwrap_or(buf.len())];
                let room = max.saturating_sub(line.len());
                if chunk.len() > room {
                    too_long = true;
                }
                line.extend_from_slice(&chunk[..chunk.len().min(room)]);
                (end.is_some(), end.map_or(buf.len(), |e| e + 1))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        input.consume(used);
        if done {
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_string();
            let item = if too_long {
                Line::TooLong(text)
            } else {
                Line::Text(text)
            };
            if !deliver(item) {
                return;
            }
            line.clear();
            too_long = false;
        }
    }
    if !line.is_empty() || too_long {
        let text = String::from_utf8_lossy(&line).to_string();
        deliver(if too_long {
            Line::TooLong(text)
        } else {
            Line::Text(text)
        });
    }
}

/// Where replies and events go: human text or JSON lines on stdout.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

/// A command's successful answer: JSON fields and the same for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Fields added to the JSON reply.
    pub fields: Map<String, Value>,
    /// Human-readable form.
    pub text: String,
}

fn fields_of(value: impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

impl Output {
    /// JSON lines when `json`, text otherwise.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    fn print(&self, line: &str) {
        if !self.json && crate::terminal::print_above_prompt(line) {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// The reply to a command named `word`.
    pub fn reply(&self, word: &str, result: Result<Answer, String>) {
        if self.json {
            let mut object = Map::new();
            object.insert("reply".into(), json!(word));
            match result {
                Ok(answer) => {
                    object.insert("ok".into(), json!(true));
                    object.extend(answer.fields);
                }
                Err(error) => {
                    object.insert("ok".into(), json!(false));
                    object.insert("error".into(), json!(error));
                }
            }
            self.print(&Value::Object(object).to_string());
        } else {
            match result {
                Ok(answer) => self.print(answer.text.trim_end()),
                Err(error) => self.print(&format!("error: {error}")),
            }
        }
    }

    /// An event as it happens.
    pub fn event(&self, event: &Event) {
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                self.print(&line);
            }
            return;
        }
        let text = match event {
            Event::Listening { address } => format!("listening on {address}"),
            Event::PeerConnected { peer_id, address } => {
                format!("peer connected: {peer_id} ({address})")
            }
            Event::PeerDisconnected { peer_id } => format!("peer disconnected: {peer_id}"),
            Event::BlockAccepted {
                height,
                hash,
                source,
            } => format!("block {height} {} accepted ({source})", hash.short()),
            Event::Reorg {
                new_tip,
                depth,
                fork_height,
                ..
            } => format!(
                "reorg: {depth} block(s) above height {fork_height} replaced; new tip {}",
                new_tip.short()
            ),
            Event::TxAccepted { txid, source } => {
                format!("transaction {} accepted ({source})", txid.short())
            }
            Event::SyncStarted {
                peer_id,
                from_height,
                to_height,
            } => format!("syncing from {peer_id}: height {from_height} -> {to_height}"),
            Event::SyncFinished {
                peer_id,
                from_height,
                to_height,
            } => format!("synced from {peer_id}: height {from_height} -> {to_height}"),
            Event::SyncProgress {
                height,
                target,
                blocks_per_s,
                ..
            } => format!("syncing: height {height} of {target} ({blocks_per_s} blocks/s)"),
            Event::NodeHalted { reason } => format!("node halted: {reason}"),
        };
        self.print(&format!("* {text}"));
    }
}

fn tx_line(tx: &TxView) -> String {
    let line = match tx.from {
        Some(from) => format!(
            "  {} {} -> {} amount {} fee {} nonce {}",
            tx.txid.short(),
            from,
            tx.to,
            tx.amount,
            tx.fee,
            tx.nonce
        ),
        None => format!(
            "  {} coinbase -> {} amount {}",
            tx.txid.short(),
            tx.to,
            tx.amount
        ),
    };
    match &tx.memo {
        Some(memo) => format!("{line} memo {memo:?}"),
        None => line,
    }
}

fn block_text(block: &BlockView) -> String {
    let mut text = format!(
        "block {} {}\n  parent {}\n  time {} nonce {} difficulty {}\n",
        block.height,
        block.hash,
        block.prev_hash,
        utc_datetime(block.timestamp),
        block.nonce,
        block.difficulty
    );
    for tx in &block.transactions {
        let _ = writeln!(text, "{}", tx_line(tx));
    }
    text
}

/// Milliseconds since the Unix epoch as a UTC date-time, `2026-12-01 07:04:04.123 UTC`.
pub fn utc_datetime(ms: u64) -> String {
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03} UTC",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1_000 % 60,
        rest % 1_000
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Carries out a parsed command through the node handle.
///
/// # Errors
/// The [`CommandError`] the node answered with.
pub async fn execute(handle: &NodeHandle, command: ConsoleCommand) -> Result<Answer, CommandError> {
    let answer = match command {
        ConsoleCommand::Help => {
            let mut text = String::from("commands:\n");
            for spec in COMMANDS {
                let _ = writeln!(text, "  {:<30} {}", spec.usage, spec.about);
            }
            let commands: Vec<&str> = COMMANDS.iter().map(|spec| spec.usage).collect();
            Answer {
                fields: fields_of(json!({ "commands": commands })),
                text,
            }
        }
        ConsoleCommand::Status => {
            let s = handle.status().await?;
            let text = format!(
                "network {} (genesis {})\npeer id {}\naddress {}\nheight {} tip {}\npeers {} mempool {} automine {}{}\nlisten {}",
                s.network,
                s.genesis.short(),
                s.peer_id,
                s.address,
                s.height,
                s.tip,
                s.peers,
                s.mempool,
                if s.automine { "on" } else { "off" },
                if s.syncing { " (syncing)" } else { "" },
                s.listen.join(" ")
            );
            Answer {
                fields: fields_of(&s),
                text,
            }
        }
        ConsoleCommand::Peers => {
            let peers = handle.peers().await?;
            let mut text = format!("{} peer(s)\n", peers.len());
            for p in &peers {
                let height = p.height.map_or("?".to_string(), |h| h.to_string());
                let _ = writeln!(
                    text,
                    "  {} height {} {}",
                    p.peer_id,
                    height,
                    p.addresses.join(" ")
                );
            }
            Answer {
                fields: fields_of(json!({ "peers": peers, "count": peers.len() })),
                text,
            }
        }
        ConsoleCommand::Tx { to, amount, fee } => {
            let txid = handle.submit_transfer(to, amount, fee).await?;
            Answer {
                fields: fields_of(json!({ "txid": txid })),
                text: format!("transaction {txid} added to the mempool"),
            }
        }
        ConsoleCommand::Post { author, content } => {
            let (txid, post) = handle.post(&author, &content, 0).await?;
            Answer {
                fields: fields_of(json!({
                    "txid": txid,
                    "author": post.author,
                    "content": post.content,
                    "timestamp": post.timestamp,
                })),
                text: format!("post {txid} added to the mempool"),
            }
        }
        ConsoleCommand::Mine(count) => {
            let mined = handle.mine(count).await?;
            Answer {
                text: format!(
                    "mined {} block(s); last at height {} {}",
                    mined.mined, mined.height, mined.hash
                ),
                fields: fields_of(&mined),
            }
        }
        ConsoleCommand::Automine(on) => {
            let on = handle.set_automine(on).await?;
            Answer {
                fields: fields_of(json!({ "automine": on })),
                text: format!("automine {}", if on { "on" } else { "off" }),
            }
        }
        ConsoleCommand::Chain(window) => {
            let page = handle.chain(window).await?;
            let blocks = page.blocks;
            let mut text = match (blocks.first(), blocks.last()) {
                (Some(first), Some(last)) => format!(
                    "heights {} to {} of a chain of {} block(s)\n",
                    first.height, last.height, page.length
                ),
                _ => format!("no blocks there: the chain has {} block(s)\n", page.length),
            };
            if blocks.len() as u64 == MAX_CHAIN_REPLY_BLOCKS {
                let _ = writeln!(
                    text,
                    "(at most {MAX_CHAIN_REPLY_BLOCKS} blocks per reply: ask for `chain from..to`)"
                );
            }
            for b in &blocks {
                let _ = writeln!(
                    text,
                    "{:>6} {} {} tx(s)",
                    b.height,
                    b.hash,
                    b.transactions.len()
                );
                for tx in &b.transactions {
                    let _ = writeln!(text, "{}", tx_line(tx));
                }
            }
            Answer {
                fields: fields_of(json!({
                    "length": page.length,
                    "from": page.from,
                    "count": blocks.len(),
                    "blocks": blocks,
                })),
                text,
            }
        }
        ConsoleCommand::Block(query) => {
            let block = handle.block(query).await?;
            let mut fields = fields_of(&block);
            fields.insert("block".into(), json!(block));
            Answer {
                text: block_text(&block),
                fields,
            }
        }
        ConsoleCommand::Balance(address) => {
            let b = handle.balance(address).await?;
            Answer {
                text: format!(
                    "{} has {} coin(s) (next nonce {})",
                    b.address, b.balance, b.nonce
                ),
                fields: fields_of(&b),
            }
        }
        ConsoleCommand::Mempool => {
            let txs = handle.mempool().await?;
            let mut text = format!("{} pending transaction(s)\n", txs.len());
            for tx in &txs {
                let _ = writeln!(text, "{}", tx_line(tx));
            }
            Answer {
                fields: fields_of(json!({ "transactions": txs, "count": txs.len() })),
                text,
            }
        }
        ConsoleCommand::Dial(addr) => {
            handle.dial(addr.clone()).await?;
            Answer {
                fields: fields_of(json!({ "address": addr.to_string() })),
                text: format!("dialing {addr}"),
            }
        }
        ConsoleCommand::Quit => Answer {
            fields: Map::new(),
            text: "stopping".to_string(),
        },
    };
    Ok(answer)
}

/// What one input line asks for: nothing (a blank line), or a reply to print.
#[derive(Debug)]
pub struct LineOutcome {
    /// The command word the reply is for.
    pub word: String,
    /// The answer or the error.
    pub result: Result<Answer, String>,
    /// True after `quit`: the console stops and the node shuts down.
    pub quit: bool,
}

/// Runs one input line against the node and returns the reply to print, if any.
pub async fn evaluate_line(handle: &NodeHandle, line: Line) -> Option<LineOutcome> {
    let text = match line {
        Line::Text(text) => text,
        Line::TooLong(prefix) => {
            return Some(LineOutcome {
                word: first_word(&prefix),
                result: Err(format!("line is longer than {MAX_LINE_BYTES} bytes")),
                quit: false,
            });
        }
    };
    let Parsed { word, command } = match parse(&text) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return None,
        Err(e) => {
            return Some(LineOutcome {
                word: e.word,
                result: Err(e.message),
                quit: false,
            })
        }
    };
    let word = word.to_string();
    let quit = command == ConsoleCommand::Quit;
    let result = execute(handle, command).await.map_err(|e| e.to_string());
    if quit {
        let _ = handle.shutdown().await;
    }
    Some(LineOutcome { word, result, quit })
}

/// Prints one event, or returns false once the node has stopped sending them.
/// A halted node sends nothing more, so its `node_halted` event ends the console too.
fn print_event(output: &Output, received: Result<Event, broadcast::error::RecvError>) -> bool {
    match received {
        Ok(event @ Event::NodeHalted { .. }) => {
            output.event(&event);
            return false;
        }
        Ok(event) => output.event(&event),
        Err(broadcast::error::RecvError::Lagged(missed)) => {
            tracing::warn!(missed, "console fell behind and missed events");
        }
        Err(broadcast::error::RecvError::Closed) => return false,
    }
    true
}

/// Reads stdin on its own thread and runs each line against the node, printing replies and
/// the node's events in the order the node produced them (the events a command caused come
/// before its reply). The end of input closes the console's input only: events are printed
/// until the node stops, and `quit` stops both.
/// `events` should be subscribed before the node starts running, so none is missed.
pub async fn run(handle: NodeHandle, mut events: broadcast::Receiver<Event>, output: Output) {
    let (lines, mut incoming) = mpsc::channel(16);
    let edit = crate::terminal::wanted(output.json);
    std::thread::spawn(move || {
        if edit && crate::terminal::read_lines(&lines) {
            return;
        }
        read_lines(std::io::stdin().lock(), MAX_LINE_BYTES, |line| {
            lines.blocking_send(line).is_ok()
        });
    });
    let mut input_open = true;
    loop {
        let line = tokio::select! {
            biased;
            received = events.recv() => {
                if !print_event(&output, received) {
                    return;
                }
                continue;
            }
            line = incoming.recv(), if input_open => line,
        };
        let Some(line) = line else {
            input_open = false;
            continue;
        };
        let evaluation = evaluate_line(&handle, line);
        tokio::pin!(evaluation);
        // Keep printing events while a long command (mine 100) runs.
        let outcome = loop {
            tokio::select! {
                biased;
                received = events.recv() => {
                    if !print_event(&output, received) {
                        break (&mut evaluation).await;
                    }
                }
                outcome = &mut evaluation => break outcome,
            }
        };
        // The node sends a command's events before its reply: print those first.
        loop {
            match events.try_recv() {
                Ok(event) => output.event(&event),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        if let Some(outcome) = outcome {
            output.reply(&outcome.word, outcome.result);
            if outcome.quit {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> ParseError {
        parse(line).unwrap_err()
    }

    fn command(line: &str) -> Result<Option<ConsoleCommand>, ParseError> {
        parse(line).map(|parsed| parsed.map(|p| p.command))
    }

    #[test]
    fn commands_parse_with_and_without_optional_arguments() {
        let to = Address([0xab; 20]);
        assert_eq!(
            command(&format!("tx {to} 10")),
            Ok(Some(ConsoleCommand::Tx {
                to,
                amount: 10,
                fee: 0
            }))
        );
        assert_eq!(
            command(&format!("  tx {to} 10 2  ")),
            Ok(Some(ConsoleCommand::Tx {
                to,
                amount: 10,
                fee: 2
            }))
        );
        assert_eq!(command("mine"), Ok(Some(ConsoleCommand::Mine(1))));
        assert_eq!(command("mine 5"), Ok(Some(ConsoleCommand::Mine(5))));
        assert_eq!(
            command("automine on"),
            Ok(Some(ConsoleCommand::Automine(true)))
        );
        assert_eq!(
            command("chain"),
            Ok(Some(ConsoleCommand::Chain(ChainWindow::Latest(20))))
        );
        assert_eq!(
            command("chain 3"),
            Ok(Some(ConsoleCommand::Chain(ChainWindow::Latest(3))))
        );
        assert_eq!(
            command("chain 5..9"),
            Ok(Some(ConsoleCommand::Chain(ChainWindow::Range {
                from: 5,
                to: Some(9)
            })))
        );
        assert_eq!(
            command("chain 5.."),
            Ok(Some(ConsoleCommand::Chain(ChainWindow::Range {
                from: 5,
                to: None
            })))
        );
        assert!(command("chain ..9").is_err());
        assert!(command("chain 5..x").is_err());
        assert_eq!(
            command("block 7"),
            Ok(Some(ConsoleCommand::Block(BlockQuery::Height(7))))
        );
        let hash = BlockHash([0x11; 32]);
        assert_eq!(
            command(&format!("block {hash}")),
            Ok(Some(ConsoleCommand::Block(BlockQuery::Hash(hash))))
        );
        assert_eq!(command("balance"), Ok(Some(ConsoleCommand::Balance(None))));
        assert_eq!(
            command("dial /ip4/127.0.0.1/tcp/4001"),
            Ok(Some(ConsoleCommand::Dial(
                "/ip4/127.0.0.1/tcp/4001".parse().unwrap()
            )))
        );
        assert_eq!(command("   "), Ok(None));
    }

    #[test]
    fn an_unknown_command_is_named_by_its_first_word() {
        let e = err("frobnicate now");
        assert_eq!(e.word, "frobnicate");
        assert!(e.message.contains("unknown command"));
    }

    #[test]
    fn missing_extra_and_malformed_arguments_are_errors_naming_the_command() {
        for (line, needle) in [
            ("tx", "usage: tx"),
            ("tx abc 5", "bad address"),
            ("tx 0000000000000000000000000000000000000000 five", "amount"),
            ("tx 0000000000000000000000000000000000000000 5 -1", "fee"),
            ("tx 0000000000000000000000000000000000000000 5 1 9", "usage"),
            ("mine lots", "count"),
            ("automine maybe", "usage: automine"),
            ("automine", "usage"),
            ("block", "usage"),
            ("block tip", "height or"),
            ("balance xyz", "bad address"),
            ("dial nowhere", "bad multiaddr"),
            ("status now", "usage"),
        ] {
            let e = err(line);
            assert_eq!(e.word, line.split_whitespace().next().unwrap(), "{line}");
            assert!(e.message.contains(needle), "{line}: {}", e.message);
        }
    }

    #[test]
    fn a_huge_first_word_is_clipped_in_the_reply() {
        let e = err(&"x".repeat(10_000));
        assert_eq!(e.word.len(), MAX_WORD_CHARS);
        assert!(e.message.len() < 200);
    }

    fn lines_of(input: &[u8], max: usize) -> Vec<Line> {
        let mut out = Vec::new();
        read_lines(std::io::BufReader::with_capacity(7, input), max, |l| {
            out.push(l);
            true
        });
        out
    }

    #[test]
    fn lines_are_split_and_a_long_line_is_cut_without_losing_the_next() {
        let mut input = b"status\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'a', 100_000));
        input.extend(b"\nmine 2\nlast");
        let lines = lines_of(&input, 16);
        assert_eq!(
            lines,
            vec![
                Line::Text("status".into()),
                Line::TooLong("a".repeat(16)),
                Line::Text("mine 2".into()),
                Line::Text("last".into()),
            ]
        );
    }

    #[test]
    fn a_line_of_exactly_the_cap_is_whole() {
        let lines = lines_of(b"abcd\nabcde\n", 4);
        assert_eq!(
            lines,
            vec![Line::Text("abcd".into()), Line::TooLong("abcd".into())]
        );
    }

    #[test]
    fn invalid_utf8_becomes_an_unknown_command_not_a_crash() {
        let lines = lines_of(b"\xff\xfe status\n", 100);
        let Line::Text(text) = &lines[0] else {
            panic!("expected a whole line");
        };
        assert!(parse(text).is_err());
    }

    #[test]
    fn each_command_word_appears_once_and_parses_to_itself() {
        for spec in COMMANDS {
            let same: Vec<_> = COMMANDS
                .iter()
                .filter(|s| s.word() == spec.word())
                .collect();
            assert_eq!(same.len(), 1, "{}", spec.word());
        }
        for (line, word) in [
            ("help", "help"),
            ("status", "status"),
            ("peers", "peers"),
            ("tx 0000000000000000000000000000000000000000 1", "tx"),
            ("post ada hello", "post"),
            ("mine", "mine"),
            ("automine off", "automine"),
            ("chain", "chain"),
            ("block 0", "block"),
            ("balance", "balance"),
            ("mempool", "mempool"),
            ("dial /ip4/127.0.0.1/tcp/1", "dial"),
            ("quit", "quit"),
        ] {
            assert_eq!(parse(line).unwrap().unwrap().word, word);
        }
        assert_eq!(COMMANDS.len(), 13, "a new command needs a line above");
    }

    #[test]
    fn block_times_read_as_utc_dates() {
        assert_eq!(utc_datetime(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(
            utc_datetime(1_767_225_600_000),
            "2026-01-01 00:00:00.000 UTC"
        );
        assert_eq!(utc_datetime(951_782_400_000), "2000-02-29 00:00:00.000 UTC");
        assert_eq!(
            utc_datetime(1_796_107_538_848),
            "2026-12-01 06:45:38.848 UTC"
        );
    }

    #[test]
    fn arity_comes_from_the_usage_line() {
        let arity = |word: &str| COMMANDS.iter().find(|s| s.word() == word).unwrap().arity();
        assert_eq!(arity("tx"), (2, 1));
        assert_eq!(arity("automine"), (1, 0));
        assert_eq!(arity("mine"), (0, 1));
        assert_eq!(arity("quit"), (0, 0));
        assert_eq!(arity("post"), (2, 0));
    }

    #[test]
    fn post_takes_an_author_and_the_rest_of_the_line_as_its_content() {
        assert_eq!(
            command("post ada hello   wide  world"),
            Ok(Some(ConsoleCommand::Post {
                author: "ada".into(),
                content: "hello wide world".into(),
            }))
        );
        assert_eq!(err("post ada").message, "usage: post <author> <content...>");
    }
}
