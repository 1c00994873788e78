//! A test plugin that misbehaves on request, to prove the host contains it.
//!
//! A filter whose decision for each record depends on the record's key:
//! - `spin`: loops forever (the host's deadline must stop it);
//! - `hog`: allocates without bound (the memory cap must stop it);
//! - `busy`: spins for as many milliseconds as the value says (`"300"`), then keeps the
//!   record: passes or times out depending on the plugin's time limit;
//! - `alloc`: allocates and touches as many MiB as the value says (`"64"`), then keeps
//!   the record: passes or hits the memory cap depending on the plugin's memory limit;
//! - `trap`: panics with the message `asked to trap`, which traps;
//! - `read-file`: tries to read `/etc/passwd` and list `/`; fails the call with the
//!   denial if both were refused (as the sandbox must), keeps the record if either worked;
//! - `socket`: tries to open a TCP connection to 127.0.0.1:80; fails the call with the
//!   denial if it was refused, keeps the record if it worked;
//! - `env`: keeps the record only if it sees any environment variable;
//! - `print`: writes the record value to stdout and stderr, keeps it;
//! - `log`: logs the record value at info level, keeps it;
//! - anything else: keeps the record.

use quiver_plugin::{Config, Error, Filter, Parts, Record, log};

struct Misbehave;

impl Filter for Misbehave {
    const PARTS: Parts = Parts::all();

    fn new(_config: &Config) -> Result<Self, Error> {
        Ok(Misbehave)
    }

    fn keep(&mut self, record: &Record<'_>) -> Result<bool, Error> {
        let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
        match record.key().unwrap_or_default() {
            b"spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            b"hog" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    // Touch every page so the memory is really committed.
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            b"busy" => {
                let ms: u64 = number(record.value())?;
                let start = std::time::Instant::now();
                while start.elapsed() < std::time::Duration::from_millis(ms) {
                    std::hint::black_box(start);
                }
                Ok(true)
            }
            b"alloc" => {
                let mib: usize = number(record.value())?;
                let mut hoard: Vec<Vec<u8>> = Vec::with_capacity(mib);
                for _ in 0..mib {
                    hoard.push(vec![1u8; 1 << 20]);
                }
                std::hint::black_box(&hoard);
                Ok(true)
            }
            b"trap" => panic!("asked to trap"),
            b"read-file" => {
                let file = std::fs::read("/etc/passwd");
                let dir = std::fs::read_dir("/");
                log::info(&format!(
                    "read-file: file {:?}, dir {:?}",
                    file.as_ref().err(),
                    dir.as_ref().err()
                ));
                match (file, dir) {
                    (Err(f), Err(d)) => Err(Error::Failed(format!(
                        "read-file denied: reading /etc/passwd: {f}; listing /: {d}"
                    ))),
                    _ => Ok(true),
                }
            }
            b"socket" => {
                let conn = std::net::TcpStream::connect("127.0.0.1:80");
                log::info(&format!("socket: {:?}", conn.as_ref().err()));
                match conn {
                    Err(e) => Err(Error::Failed(format!(
                        "socket denied: connecting to 127.0.0.1:80: {e}"
                    ))),
                    Ok(_) => Ok(true),
                }
            }
            b"env" => Ok(std::env::vars_os().next().is_some()),
            b"print" => {
                println!("stdout: {}", text(record.value()));
                eprintln!("stderr: {}", text(record.value()));
                Ok(true)
            }
            b"log" => {
                log::info(&text(record.value()));
                Ok(true)
            }
            _ => Ok(true),
        }
    }
}

/// The record value as a number, for `busy` and `alloc`.
fn number<T: std::str::FromStr>(value: Option<&[u8]>) -> Result<T, Error> {
    std::str::from_utf8(value.unwrap_or_default())
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error::Failed("the value must be a number".into()))
}

quiver_plugin::export_filter!(Misbehave);
