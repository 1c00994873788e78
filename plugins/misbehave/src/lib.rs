//! A test plugin that misbehaves on request, to prove the host contains it.
//!
//! A filter whose decision for each record depends on the record's key:
//! - `spin`: loops forever (the host's deadline must stop it);
//! - `hog`: allocates without bound (the memory cap must stop it);
//! - `trap`: panics, which traps;
//! - `read-file`: tries to read `/etc/passwd` and list `/`; keeps the record only if
//!   either worked;
//! - `socket`: tries to open a TCP connection to 127.0.0.1:80; keeps the record only if
//!   it worked;
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
            b"trap" => panic!("asked to trap"),
            b"read-file" => {
                let file = std::fs::read("/etc/passwd");
                let dir = std::fs::read_dir("/");
                log::info(&format!(
                    "read-file: file {:?}, dir {:?}",
                    file.as_ref().err(),
                    dir.as_ref().err()
                ));
                Ok(file.is_ok() || dir.is_ok())
            }
            b"socket" => {
                let conn = std::net::TcpStream::connect("127.0.0.1:80");
                log::info(&format!("socket: {:?}", conn.as_ref().err()));
                Ok(conn.is_ok())
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

quiver_plugin::export_filter!(Misbehave);
