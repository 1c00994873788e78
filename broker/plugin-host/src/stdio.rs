//! The guest's stdout and stderr, turned into log lines instead of reaching the host's.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::log::{LogLevel, LogSource, MAX_MESSAGE_BYTES, PluginLog};

/// Lines of the current call kept for a trap's message.
const TAIL_LINES: usize = 32;

/// A WASI output stream that appends each complete line to a [`PluginLog`]. A line
/// longer than the log's message bound is cut into pieces rather than buffered without
/// end. It also keeps the last lines written since [`clear_tail`](Self::clear_tail):
/// when a call traps, the guest's own last words (a Rust panic message, a Python
/// exception) are among them.
#[derive(Debug, Clone)]
pub(crate) struct LogStream {
    log: Arc<PluginLog>,
    source: LogSource,
    version: u32,
    // Shared by every stream handle the guest opens, because WASI may hand out a fresh
    // handle per write and a line can span two of them.
    pending: Arc<Mutex<Vec<u8>>>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl LogStream {
    pub(crate) fn new(log: Arc<PluginLog>, source: LogSource, version: u32) -> LogStream {
        LogStream {
            log,
            source,
            version,
            pending: Arc::default(),
            tail: Arc::default(),
        }
    }

    /// Forgets the lines kept so far: called as each call starts.
    pub(crate) fn clear_tail(&self) {
        self.tail.lock().clear();
    }

    /// The lines written since the last [`clear_tail`](Self::clear_tail), oldest first,
    /// with a last line not yet ended by a newline.
    pub(crate) fn tail(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.tail.lock().iter().cloned().collect();
        let pending = self.pending.lock();
        if !pending.is_empty() {
            lines.push(String::from_utf8_lossy(&pending).into_owned());
        }
        lines
    }

    fn level(&self) -> LogLevel {
        match self.source {
            LogSource::Stderr => LogLevel::Warn,
            _ => LogLevel::Info,
        }
    }

    fn append(&self, bytes: &[u8]) {
        let mut pending = self.pending.lock();
        pending.extend_from_slice(bytes);
        while let Some(newline) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=newline).collect();
            self.emit(&line[..line.len() - 1]);
        }
        if pending.len() >= MAX_MESSAGE_BYTES {
            let line: Vec<u8> = pending.drain(..).collect();
            self.emit(&line);
        }
    }

    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        self.log.push(self.level(), self.source, self.version, text);
        let mut tail = self.tail.lock();
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text.to_string());
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always writable: the log drops old entries instead of pushing back.
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
