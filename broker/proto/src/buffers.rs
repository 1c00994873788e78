//! A small pool of large byte buffers, handed back when the bytes made from them are no
//! longer referenced.
//!
//! Quiver moves data in buffers of about a megabyte: a producer's batch, a produce
//! request as the broker reads it. Allocated afresh each time, such a buffer is usually
//! mapped on its own by the allocator and unmapped when freed (glibc does this above its
//! mmap threshold, and trims its heaps), so every new one is page-faulted in again, one
//! fault per 4 KiB page, while it is first written. Profiling `quiver bench produce`
//! showed those faults at 7–8% of the client's and of the broker's CPU. A pool keeps a
//! few such buffers warm instead.
//!
//! The owner of a buffer gives it back with [`BufferPool::recycle`] where its work is
//! done (a batch acknowledged, a request answered). Something else may still refer to
//! it then: a QUIC send queue lets go of a batch only when the peer acknowledges the last
//! packet, which may come after the produce response. Such a buffer waits in the pool
//! and becomes free when the last reference goes; one that stays referenced (a slice an
//! application keeps) is let go of, to be freed as usual. Nothing is written into while
//! anything else refers to it.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use bytes::{Bytes, BytesMut};

/// A sensible `min_capacity`: below this size the allocator recycles buffers cheaply
/// by itself, from its heaps.
pub const POOLED_MIN_BYTES: usize = 64 * 1024;

/// Buffers kept for reuse, bounded by count and by their total size.
#[derive(Debug)]
pub struct BufferPool {
    held: Mutex<Held>,
    /// Buffers smaller than this are left to the allocator, which recycles them cheaply.
    min_capacity: usize,
    /// Total size the held buffers may have.
    max_held_bytes: usize,
    max_buffers: usize,
}

#[derive(Debug, Default)]
struct Held {
    /// Owned outright, ready to be written into.
    free: Vec<Vec<u8>>,
    /// Given back while still referred to elsewhere, oldest first.
    waiting: VecDeque<Bytes>,
}

impl Held {
    /// Moves every waiting buffer nothing else refers to any more to `free`.
    fn settle(&mut self) {
        for _ in 0..self.waiting.len() {
            let Some(bytes) = self.waiting.pop_front() else {
                break;
            };
            match bytes.try_into_mut() {
                Ok(unique) => self.free.push(emptied(unique)),
                Err(shared) => self.waiting.push_back(shared),
            }
        }
    }

    fn count(&self) -> usize {
        self.free.len() + self.waiting.len()
    }

    fn bytes(&self) -> usize {
        let free: usize = self.free.iter().map(Vec::capacity).sum();
        let waiting: usize = self.waiting.iter().map(Bytes::len).sum();
        free + waiting
    }
}

/// The allocation of a buffer nothing else refers to, as an empty `Vec`. Emptied first,
/// so that the conversion copies nothing.
fn emptied(mut unique: BytesMut) -> Vec<u8> {
    unique.clear();
    Vec::from(unique)
}

impl BufferPool {
    /// A pool that holds at most `max_buffers` buffers of at least `min_capacity` bytes
    /// each, `max_held_bytes` in all.
    pub const fn new(max_buffers: usize, min_capacity: usize, max_held_bytes: usize) -> Self {
        BufferPool {
            held: Mutex::new(Held {
                free: Vec::new(),
                waiting: VecDeque::new(),
            }),
            min_capacity,
            max_held_bytes,
            max_buffers,
        }
    }

    /// An empty buffer with room for at least `capacity` bytes: the smallest free one
    /// it fits in, or a new one.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        if capacity >= self.min_capacity {
            let mut held = self.lock();
            held.settle();
            let best = held
                .free
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= capacity)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            if let Some(i) = best {
                return held.free.swap_remove(i);
            }
        }
        Vec::with_capacity(capacity)
    }

    /// [`take`](Self::take) as a `BytesMut`, to read into.
    pub fn take_bytes_mut(&self, capacity: usize) -> BytesMut {
        // Through `Bytes`, of which it is the only reference: no copy.
        BytesMut::from(Bytes::from(self.take(capacity)))
    }

    /// Gives back the buffer behind `bytes`, to be reused once `bytes` is its only
    /// reference. Returns whether the pool kept it.
    pub fn recycle(&self, bytes: Bytes) -> bool {
        if bytes.len() < self.min_capacity {
            return false;
        }
        let mut held = self.lock();
        if !self.has_room(&mut held, bytes.len()) {
            return false;
        }
        match bytes.try_into_mut() {
            Ok(unique) => held.free.push(emptied(unique)),
            Err(shared) => held.waiting.push_back(shared),
        }
        true
    }

    /// Gives back a buffer that is already owned outright.
    pub fn recycle_vec(&self, mut buf: Vec<u8>) -> bool {
        if buf.capacity() < self.min_capacity {
            return false;
        }
        let mut held = self.lock();
        if !self.has_room(&mut held, buf.capacity()) {
            return false;
        }
        buf.clear();
        held.free.push(buf);
        true
    }

    /// Whether a buffer of `size` bytes fits. When the pool is full, the waiting buffer
    /// referred to elsewhere for longest is let go of to make room: whatever holds it
    /// frees it in the end.
    fn has_room(&self, held: &mut Held, size: usize) -> bool {
        let fits = |held: &Held| {
            held.count() < self.max_buffers
                && held.bytes().saturating_add(size) <= self.max_held_bytes
        };
        if fits(held) {
            return true;
        }
        held.settle();
        while !fits(held) {
            if held.waiting.pop_front().is_none() {
                return false;
            }
        }
        true
    }

    /// Free buffers, buffers still waiting, and their total size.
    pub fn held(&self) -> (usize, usize, usize) {
        let held = self.lock();
        (held.free.len(), held.waiting.len(), held.bytes())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // The lists are valid whatever a panicking holder was doing.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn filled(pool: &BufferPool, len: usize, byte: u8) -> Bytes {
        let mut buf = pool.take(len);
        buf.resize(len, byte);
        Bytes::from(buf)
    }

    #[test]
    fn a_recycled_buffer_is_taken_again_and_comes_back_empty() {
        let pool = BufferPool::new(4, 1024, 16 * MIB);
        let first = filled(&pool, MIB, 1);
        let at = first.as_ptr();
        assert!(pool.recycle(first));
        assert_eq!(pool.held(), (1, 0, MIB));

        let mut again = pool.take(MIB);
        assert_eq!(again.as_ptr(), at, "the same allocation");
        assert!(again.is_empty());
        assert!(again.capacity() >= MIB);
        assert_eq!(pool.held(), (0, 0, 0));

        // And as a `BytesMut` to read into, still the same allocation.
        again.resize(MIB, 2);
        assert!(pool.recycle(Bytes::from(again)));
        let mut read = pool.take_bytes_mut(MIB);
        assert_eq!(read.as_ptr(), at);
        assert!(read.is_empty() && read.capacity() >= MIB);
        read.extend_from_slice(&[3; 10]);
        assert_eq!(read.as_ptr(), at);
    }

    #[test]
    fn a_buffer_still_referred_to_waits_until_it_is_let_go() {
        let pool = BufferPool::new(4, 1024, 16 * MIB);
        let first = filled(&pool, MIB, 7);
        let at = first.as_ptr();
        let slice = first.slice(100..200);
        assert!(pool.recycle(first));
        assert_eq!(pool.held(), (0, 1, MIB));

        // Still referred to: not handed out, and the slice keeps its bytes.
        let other = pool.take(MIB);
        assert_ne!(other.as_ptr(), at);
        assert_eq!(slice.as_ref(), &[7; 100]);

        drop(slice);
        let again = pool.take(MIB);
        assert_eq!(again.as_ptr(), at, "free once the last reference went");
        assert!(again.is_empty());
        assert_eq!(pool.held(), (0, 0, 0));
    }

    #[test]
    fn when_full_the_longest_waiting_buffer_is_let_go() {
        let pool = BufferPool::new(2, 1024, 16 * MIB);
        let a = filled(&pool, MIB, 1);
        let b = filled(&pool, MIB, 2);
        let (keep_a, keep_b) = (a.clone(), b.clone());
        assert!(pool.recycle(a));
        assert!(pool.recycle(b));
        let c = filled(&pool, MIB, 3);
        let at_c = c.as_ptr();
        assert!(
            pool.recycle(c),
            "room is made by letting the oldest waiter go"
        );
        assert_eq!(pool.held(), (1, 1, 2 * MIB));
        assert_eq!(keep_a.as_ref(), &[1; MIB][..], "its holder still has it");
        let taken = pool.take(MIB);
        assert_eq!(taken.as_ptr(), at_c);
        drop((keep_a, keep_b));
    }

    #[test]
    fn the_smallest_buffer_that_fits_is_taken() {
        let pool = BufferPool::new(4, 1024, 16 * MIB);
        assert!(pool.recycle_vec(Vec::with_capacity(4 * MIB)));
        assert!(pool.recycle_vec(Vec::with_capacity(MIB)));
        assert!(pool.take(MIB / 2).capacity() < 4 * MIB);
        assert!(pool.take(2 * MIB).capacity() >= 4 * MIB);
        // None fits: a new one, and nothing held is consumed.
        assert!(pool.recycle_vec(Vec::with_capacity(MIB)));
        assert!(pool.take(8 * MIB).capacity() >= 8 * MIB);
        assert_eq!(pool.held().0, 1);
    }

    #[test]
    fn the_pool_is_bounded_by_count_by_bytes_and_ignores_small_buffers() {
        let fresh = |len: usize| Bytes::from(vec![0u8; len]);
        let pool = BufferPool::new(2, 1024, 3 * MIB);
        assert!(!pool.recycle(fresh(100)), "small: left to the allocator");
        assert!(pool.recycle(fresh(MIB)));
        assert!(pool.recycle(fresh(MIB)));
        assert!(!pool.recycle(fresh(1024)), "count bound");
        assert_eq!(pool.held(), (2, 0, 2 * MIB));

        let pool = BufferPool::new(8, 1024, 3 * MIB);
        assert!(pool.recycle(fresh(2 * MIB)));
        assert!(!pool.recycle(fresh(2 * MIB)), "byte bound");
        assert_eq!(pool.held(), (1, 0, 2 * MIB));
    }
}
