//! The per-process caching allocator for device buffers. Requests are rounded up to a bucket
//! size; a buffer whose owner drops goes back to its bucket's free list instead of to the driver,
//! so a training step that allocates the same sizes every iteration stops calling the driver
//! after the first one. On a driver allocation failure the cache is released and the
//! allocation retried once.
//!
//! The bookkeeping (`PoolCore`, `PoolBuf`) is generic over the block type so that it is tested
//! on the CPU with a mock allocator; the GPU uses `DeviceBuf = PoolBuf<CudaSlice<f32>>`.

use crate::error::Result;
use cudarc::driver::CudaSlice;
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};

/// A block the pool can hold: its length in f32 elements.
pub trait Block: Send + 'static {
    fn elems(&self) -> usize;
}

impl Block for CudaSlice<f32> {
    fn elems(&self) -> usize {
        self.len()
    }
}

/// Below this many elements (4 MiB) sizes round up to a multiple of `SMALL_STEP`.
const SMALL_LIMIT: usize = 1 << 20;
const SMALL_STEP: usize = 256;

/// The bucket a request of `n` elements is served from: at least 1 element (the driver rejects
/// empty allocations), multiples of 1 KiB up to 4 MiB, then 16 steps per power of two (at most
/// 6.25 % over the request).
pub fn bucket_len(n: usize) -> usize {
    let n = n.max(1);
    if n <= SMALL_LIMIT {
        return n.div_ceil(SMALL_STEP) * SMALL_STEP;
    }
    let step = 1usize << (usize::BITS - 1 - n.leading_zeros()).saturating_sub(4);
    n.div_ceil(step) * step
}

/// Counters of one pool, in bytes and calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemStats {
    /// Bytes held by live buffers (their bucket sizes).
    pub in_use: u64,
    /// Largest `in_use` so far.
    pub peak: u64,
    /// Bytes kept in the free lists, ready for reuse.
    pub cached: u64,
    /// Allocations that went to the driver.
    pub driver_allocs: u64,
    /// Allocations served from the free lists.
    pub reuses: u64,
    /// Blocks given back to the driver (cache releases and odd-sized blocks).
    pub driver_frees: u64,
}

impl std::fmt::Display for MemStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        write!(
            f,
            "in use {:.1} MiB, peak {:.1} MiB, cached {:.1} MiB; {} driver allocations, {} reuses, {} frees",
            mib(self.in_use),
            mib(self.peak),
            mib(self.cached),
            self.driver_allocs,
            self.reuses,
            self.driver_frees
        )
    }
}

/// Size-bucketed free lists and the counters.
pub struct PoolCore<B> {
    free: HashMap<usize, Vec<B>>,
    stats: MemStats,
}

impl<B: Block> Default for PoolCore<B> {
    fn default() -> Self {
        PoolCore {
            free: HashMap::new(),
            stats: MemStats::default(),
        }
    }
}

fn bytes(elems: usize) -> u64 {
    elems as u64 * 4
}

impl<B: Block> PoolCore<B> {
    /// A cached block of `bucket` elements, counted as in use.
    fn reuse(&mut self, bucket: usize) -> Option<B> {
        let b = self.free.get_mut(&bucket)?.pop()?;
        self.stats.cached -= bytes(bucket);
        self.stats.reuses += 1;
        self.count_in_use(bucket);
        Some(b)
    }
    fn count_in_use(&mut self, elems: usize) {
        self.stats.in_use += bytes(elems);
        self.stats.peak = self.stats.peak.max(self.stats.in_use);
    }
    /// Takes back a block whose owner dropped it; returns it when it must go to the driver
    /// instead (a block of a size no request rounds to, e.g. one adopted from a launcher).
    fn give_back(&mut self, b: B) -> Option<B> {
        let n = b.elems();
        self.stats.in_use = self.stats.in_use.saturating_sub(bytes(n));
        if bucket_len(n) != n {
            self.stats.driver_frees += 1;
            return Some(b);
        }
        self.stats.cached += bytes(n);
        self.free.entry(n).or_default().push(b);
        None
    }
    /// Empties the free lists (the caller drops the blocks outside the lock).
    fn drain(&mut self) -> Vec<B> {
        let out: Vec<B> = self.free.drain().flat_map(|(_, v)| v).collect();
        self.stats.driver_frees += out.len() as u64;
        self.stats.cached = 0;
        out
    }
}

/// A shared pool of blocks of type `B`.
pub struct Pool<B> {
    core: Arc<Mutex<PoolCore<B>>>,
}

impl<B> Clone for Pool<B> {
    fn clone(&self) -> Self {
        Pool {
            core: self.core.clone(),
        }
    }
}

impl<B: Block> Default for Pool<B> {
    fn default() -> Self {
        Pool {
            core: Arc::new(Mutex::new(PoolCore::default())),
        }
    }
}

impl<B: Block> Pool<B> {
    fn lock(&self) -> MutexGuard<'_, PoolCore<B>> {
        // The bookkeeping stays consistent even if a holder panicked: keep using it.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A buffer of at least `n` elements (exactly `bucket_len(n)`), from the cache or from
    /// `driver` (called with the bucket length). A driver failure releases the cache and
    /// retries once.
    pub fn alloc(&self, n: usize, driver: impl Fn(usize) -> Result<B>) -> Result<PoolBuf<B>> {
        let bucket = bucket_len(n);
        if let Some(b) = self.lock().reuse(bucket) {
            return Ok(self.wrap(b));
        }
        let block = match driver(bucket) {
            Ok(b) => b,
            Err(_) => {
                self.release_cached();
                driver(bucket)?
            }
        };
        let mut core = self.lock();
        core.stats.driver_allocs += 1;
        core.count_in_use(block.elems());
        drop(core);
        Ok(self.wrap(block))
    }

    /// Wraps a block allocated elsewhere so that it is counted and recycled (or freed) on drop.
    pub fn adopt(&self, b: B) -> PoolBuf<B> {
        self.lock().count_in_use(b.elems());
        self.wrap(b)
    }

    fn wrap(&self, b: B) -> PoolBuf<B> {
        PoolBuf {
            block: Some(b),
            pool: self.clone(),
        }
    }

    /// Gives every cached block back to the driver; returns how many bytes that released.
    pub fn release_cached(&self) -> u64 {
        let mut core = self.lock();
        let freed = core.stats.cached;
        let blocks = core.drain();
        drop(core);
        drop(blocks);
        freed
    }

    pub fn stats(&self) -> MemStats {
        self.lock().stats
    }
}

/// A pooled buffer: derefs to the block, and goes back to its pool when dropped.
pub struct PoolBuf<B: Block> {
    /// Always `Some` until `drop` takes it.
    block: Option<B>,
    pool: Pool<B>,
}

impl<B: Block> Deref for PoolBuf<B> {
    type Target = B;
    fn deref(&self) -> &B {
        self.block
            .as_ref()
            .expect("a PoolBuf holds its block until dropped")
    }
}

impl<B: Block> DerefMut for PoolBuf<B> {
    fn deref_mut(&mut self) -> &mut B {
        self.block
            .as_mut()
            .expect("a PoolBuf holds its block until dropped")
    }
}

impl<B: Block> Drop for PoolBuf<B> {
    fn drop(&mut self) {
        if let Some(b) = self.block.take() {
            let back = self.pool.lock().give_back(b);
            drop(back); // a block the pool does not keep is freed here, outside the lock
        }
    }
}

/// A pooled device buffer of f32.
pub type DeviceBuf = PoolBuf<CudaSlice<f32>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A mock block that counts live instances, so frees are observable.
    struct Mock {
        len: usize,
        live: Arc<AtomicUsize>,
    }

    impl Block for Mock {
        fn elems(&self) -> usize {
            self.len
        }
    }

    impl Drop for Mock {
        fn drop(&mut self) {
            self.live.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn driver(live: &Arc<AtomicUsize>, calls: &Arc<AtomicUsize>) -> impl Fn(usize) -> Result<Mock> {
        let (live, calls) = (live.clone(), calls.clone());
        move |len| {
            calls.fetch_add(1, Ordering::SeqCst);
            live.fetch_add(1, Ordering::SeqCst);
            Ok(Mock {
                len,
                live: live.clone(),
            })
        }
    }

    #[test]
    fn buckets_round_up_by_at_most_a_sixteenth_above_4_mib() {
        assert_eq!(bucket_len(0), 256);
        assert_eq!(bucket_len(1), 256);
        assert_eq!(bucket_len(256), 256);
        assert_eq!(bucket_len(257), 512);
        assert_eq!(bucket_len(SMALL_LIMIT), SMALL_LIMIT);
        for n in [
            SMALL_LIMIT + 1,
            3_000_017,
            1 << 27,
            (1 << 27) + 1,
            999_999_999,
        ] {
            let b = bucket_len(n);
            assert!(b >= n && (b - n) as f64 <= n as f64 / 16.0, "{n} -> {b}");
            assert_eq!(bucket_len(b), b, "a bucket is its own bucket ({n})");
        }
        for n in 0..5000 {
            let b = bucket_len(n);
            assert!(b >= n.max(1) && bucket_len(b) == b);
        }
    }

    #[test]
    fn dropped_buffers_are_reused_and_counted() {
        let (live, calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let pool: Pool<Mock> = Pool::default();
        let drv = driver(&live, &calls);
        // A "training step" allocating the same sizes three times.
        for step in 0..3 {
            let a = pool.alloc(1000, &drv).unwrap();
            let b = pool.alloc(5, &drv).unwrap();
            let c = pool.alloc(1000, &drv).unwrap();
            assert_eq!((a.elems(), b.elems(), c.elems()), (1024, 256, 1024));
            let s = pool.stats();
            assert_eq!(s.in_use, 4 * (1024 + 256 + 1024), "step {step}");
            assert_eq!(s.cached, 0);
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "only the first step hits the driver"
        );
        let s = pool.stats();
        assert_eq!((s.driver_allocs, s.reuses), (3, 6));
        assert_eq!(s.in_use, 0);
        assert_eq!(s.peak, 4 * (1024 + 256 + 1024));
        assert_eq!(s.cached, 4 * (1024 + 256 + 1024));
        assert_eq!(
            live.load(Ordering::SeqCst),
            3,
            "cached blocks stay allocated"
        );
        assert_eq!(pool.release_cached(), 4 * (1024 + 256 + 1024));
        assert_eq!(live.load(Ordering::SeqCst), 0);
        assert_eq!(pool.stats().cached, 0);
    }

    #[test]
    fn adopted_odd_sizes_are_freed_and_bucket_sizes_kept() {
        let (live, calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let pool: Pool<Mock> = Pool::default();
        let drv = driver(&live, &calls);
        let odd = pool.adopt(drv(300).unwrap());
        let even = pool.adopt(drv(512).unwrap());
        assert_eq!(pool.stats().in_use, 4 * 812);
        drop(odd);
        assert_eq!(live.load(Ordering::SeqCst), 1, "300 is no bucket: freed");
        drop(even);
        let s = pool.stats();
        assert_eq!((s.in_use, s.cached, s.driver_frees), (0, 4 * 512, 1));
        // The kept block serves a later request of its bucket without the driver.
        let again = pool.alloc(400, &drv).unwrap();
        assert_eq!(again.elems(), 512);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_failed_driver_allocation_releases_the_cache_and_retries() {
        let (live, calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let pool: Pool<Mock> = Pool::default();
        let ok = driver(&live, &calls);
        drop(pool.alloc(10_000, &ok).unwrap());
        assert_eq!(live.load(Ordering::SeqCst), 1);
        // Fails while anything else is allocated (an "out of memory" device of one block).
        let tight = |len| {
            if live.load(Ordering::SeqCst) > 0 {
                Err(Error::invalid("alloc", "out of memory"))
            } else {
                ok(len)
            }
        };
        let b = pool.alloc(20_000, tight).unwrap();
        assert_eq!(b.elems(), bucket_len(20_000));
        assert_eq!(pool.stats().cached, 0);
        assert_eq!(live.load(Ordering::SeqCst), 1);
        // Still failing after the release: the error comes through.
        let never = |_| -> Result<Mock> { Err(Error::invalid("alloc", "out of memory")) };
        assert!(pool.alloc(1 << 22, never).is_err());
    }

    #[test]
    fn concurrent_alloc_and_drop_keep_the_counters_consistent() {
        let (live, calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let pool: Pool<Mock> = Pool::default();
        std::thread::scope(|s| {
            for t in 0..4 {
                let (pool, drv) = (pool.clone(), driver(&live, &calls));
                s.spawn(move || {
                    for i in 0..200 {
                        let a = pool.alloc(100 + (i * 7 + t) % 900, &drv).unwrap();
                        let b = pool.alloc(3000, &drv).unwrap();
                        drop(a);
                        drop(b);
                    }
                });
            }
        });
        let s = pool.stats();
        assert_eq!(s.in_use, 0);
        assert_eq!(s.driver_allocs + s.reuses, 1600);
        assert_eq!(s.driver_allocs as usize, live.load(Ordering::SeqCst));
        assert!(s.driver_allocs <= 4 * 5, "{s:?}");
    }
}
