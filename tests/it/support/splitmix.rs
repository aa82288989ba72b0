//! The ids a per-thread SplitMix64 counter (issue 10's request ids for a while) gives after
//! one of its outputs: the output function inverted to the counter, stepped, and mixed again.
//! The review of issue 10 found a `read` token could do this with its own echoed
//! `X-Opaque-Id`; the unit test in `src/proxy/mod.rs` and `it::opaque_id` both hold esgate's
//! ids to being unpredictable by it (this file is included in both).

use std::collections::HashSet;

const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
const M1: u64 = 0xbf58_476d_1ce4_e5b9;
const M2: u64 = 0x94d0_49bb_1331_11eb;

/// The inverse of `x ^ (x >> s)`.
fn unshift(y: u64, s: u32) -> u64 {
    let mut x = y;
    for _ in 0..64 / s {
        x = y ^ (x >> s);
    }
    x
}

/// The multiplicative inverse of an odd number modulo 2^64 (Newton's iteration).
fn inverse(c: u64) -> u64 {
    let mut inv = c;
    for _ in 0..6 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(c.wrapping_mul(inv)));
    }
    inv
}

/// SplitMix64's output function.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(M1);
    z = (z ^ (z >> 27)).wrapping_mul(M2);
    z ^ (z >> 31)
}

/// The counter whose output is `id`.
pub fn unmix(id: u64) -> u64 {
    let z = unshift(id, 31).wrapping_mul(inverse(M2));
    let z = unshift(z, 27).wrapping_mul(inverse(M1));
    unshift(z, 30)
}

/// The `n` outputs after `id`.
pub fn successors(id: u64, n: u64) -> HashSet<u64> {
    let counter = unmix(id);
    (1..=n)
        .map(|k| mix(counter.wrapping_add(k.wrapping_mul(GAMMA))))
        .collect()
}
