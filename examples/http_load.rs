//! A concurrent HTTP load client for `scripts/bench-http.sh`: `THREADS` keep-alive connections
//! each POST their share of `COUNT` transfers of 1 coin to `/api/v1/transactions`; prints the
//! accepted (201) and refused counts, the elapsed seconds and the accepted rate. Std only.
//!
//! Usage: `http_load HOST:PORT COUNT THREADS`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Where the transfers go: an address nobody holds the key of.
const TO: &str = "0badc0ffee0badc0ffee0badc0ffee0badc0ffee";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: http_load HOST:PORT COUNT THREADS");
        std::process::exit(2);
    }
    let addr = args[1].clone();
    let count: usize = args[2].parse().unwrap_or(10_000);
    let threads: usize = args[3].parse().unwrap_or(16).max(1);
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let addr = addr.clone();
            let share = count / threads + usize::from(i < count % threads);
            std::thread::spawn(move || post_many(&addr, share))
        })
        .collect();
    let (mut accepted, mut refused) = (0, 0);
    for worker in workers {
        let (a, r) = worker.join().unwrap_or((0, 0));
        accepted += a;
        refused += r;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{accepted} {refused} {seconds:.3} {:.0}",
        accepted as f64 / seconds
    );
}

/// Sends `n` transfers over one keep-alive connection: (accepted, refused).
fn post_many(addr: &str, n: usize) -> (usize, usize) {
    let Ok(stream) = TcpStream::connect(addr) else {
        return (0, n);
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return (0, n),
    };
    let mut reader = BufReader::new(stream);
    let body = format!(r#"{{"to":"{TO}","amount":1,"fee":0}}"#);
    let request = format!(
        "POST /api/v1/transactions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..n {
        if writer.write_all(request.as_bytes()).is_err() {
            refused += 1;
            continue;
        }
        match read_status(&mut reader) {
            Some(201) => accepted += 1,
            _ => refused += 1,
        }
    }
    (accepted, refused)
}

/// Reads one answer; returns its status.
fn read_status(reader: &mut BufReader<TcpStream>) -> Option<u16> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(status)
}
