//! A tiny WebDriver client: chromedriver started on a free port, one headless Chromium session
//! with a fresh profile, and scripts run in the page. Requests go over the plain HTTP client in
//! `http_client.rs`; every wait is bounded.
//!
//! Needs Debian's `chromium` and `chromium-driver`. [`Browser::start`] returns `None` when they
//! are absent, unless `CI` is set: then it fails, so CI never skips the browser test silently.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Sends one request and reads exactly the answer's `Content-Length` bytes: chromedriver
/// keeps connections open, so reading to the end would wait for the timeout.
fn send_raw(
    base: &str,
    method: &str,
    path: &str,
    _headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> super::http_client::Response {
    use std::io::{BufRead, BufReader, Read, Write};
    let authority = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(authority).expect("chromedriver answers");
    stream
        .set_read_timeout(Some(timeout))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(timeout))
        .expect("write timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("request sent");
    stream.write_all(body).expect("request sent");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("a status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("a header line");
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("the whole answer");
    super::http_client::Response {
        status,
        headers,
        body,
    }
}

/// Where Debian puts the browser and its driver.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Longest one WebDriver command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A running chromedriver with one browser session; both end on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium, or `None` (after saying so on stderr) if
    /// they are not installed and `CI` is not set.
    pub fn start() -> Option<Browser> {
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but {CHROMIUM} or {CHROMEDRIVER} is missing: install chromium and chromium-driver");
            }
            eprintln!("SKIPPED: the browser test needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within 20s"
            );
            thread::sleep(Duration::from_millis(50));
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!(
            "--user-data-dir={}",
            browser._profile.path().display()
        )])
        .collect::<Vec<_>>();
        let answer = browser.call(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
                "timeouts": {"script": 20_000, "pageLoad": 20_000},
            }}}),
        );
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        Some(browser)
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let response = send_raw(
            &self.base,
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
            COMMAND_TIMEOUT,
        );
        let answer = response.json();
        assert!(
            response.status == 200,
            "WebDriver {method} {path}: {} {answer}",
            response.status
        );
        answer["value"].clone()
    }

    /// Opens `url` in the session's window.
    pub fn open(&self, url: &str) {
        let path = format!("/session/{}/url", self.session);
        self.call("POST", &path, json!({ "url": url }));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page; returns its value.
    pub fn run(&self, script: &str, args: Value) -> Value {
        let path = format!("/session/{}/execute/sync", self.session);
        let args = if args.is_null() { json!([]) } else { args };
        self.call("POST", &path, json!({ "script": script, "args": args }))
    }

    /// Runs `script` until it returns something other than null or false, at most `timeout`.
    pub fn wait_for(&self, what: &str, script: &str, args: Value, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.run(script, args.clone());
            if !(value.is_null() || value == Value::Bool(false)) {
                return value;
            }
            if Instant::now() >= deadline {
                let page = self.run("return document.body.innerText", Value::Null);
                panic!("{what}: not seen within {timeout:?}; the page reads:\n{page}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG screenshot of the window.
    pub fn screenshot(&self, to: &Path) {
        use base64_free::decode;
        let path = format!("/session/{}/screenshot", self.session);
        let data = self.call("GET", &path, Value::Null);
        let bytes = decode(data.as_str().unwrap_or_default());
        std::fs::write(to, bytes).expect("screenshot written");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                send_raw(
                    &self.base,
                    "DELETE",
                    &path,
                    &[],
                    b"",
                    Duration::from_secs(10),
                )
            }));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 decoding, enough for a screenshot (no dependency for it).
mod base64_free {
    /// The bytes `text` encodes; characters outside the alphabet are skipped.
    pub fn decode(text: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        };
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        let (mut acc, mut bits) = (0u32, 0);
        for v in text.bytes().filter_map(value) {
            acc = (acc << 6) | u32::from(v);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }
}
