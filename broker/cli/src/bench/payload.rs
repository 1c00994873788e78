//! Record payloads that look like real text, so compression ratios mean something.

/// Words drawn from log-line vocabulary; a record is words until it is `size` bytes.
const WORDS: &[&str] = &[
    "user",
    "order",
    "checkout",
    "id",
    "status",
    "ok",
    "error",
    "timeout",
    "GET",
    "POST",
    "/api/v1/items",
    "latency_ms",
    "region",
    "eu-west-1",
    "us-east-2",
    "session",
    "cart",
    "payment",
    "accepted",
    "declined",
    "retry",
    "shipment",
    "warehouse",
    "sku",
    "price",
    "currency",
    "EUR",
    "USD",
    "quantity",
    "customer",
    "email",
    "device",
    "mobile",
    "web",
];

/// A deterministic pseudo-random generator (xorshift), so runs are comparable.
#[derive(Debug)]
pub struct TextGen(u64);

impl TextGen {
    pub fn new(seed: u64) -> Self {
        TextGen(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A JSON-ish line of exactly `size` bytes.
    pub fn record(&mut self, size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(size + 32);
        out.extend_from_slice(b"{");
        while out.len() < size {
            let w = WORDS[(self.next() % WORDS.len() as u64) as usize];
            let n = self.next() % 100_000;
            out.extend_from_slice(format!("\"{w}\":{n},").as_bytes());
        }
        out.truncate(size);
        out
    }
}
