//! The three ways a pool picks a target among the candidates (a bit set of target indexes, at most 64).
//!
//! - Smooth weighted round-robin (nginx's): each pick adds every candidate's weight to its running score,
//!   takes the highest and subtracts the candidates' total from it, so weights 5:1:1 give
//!   `a a b a c a a`, never `a a a a a b c`.
//! - Power of two choices: two distinct random candidates, the one with fewer requests in flight per unit
//!   of weight; nearly as good as scanning all of them, without herding onto one idle target.
//! - Rendezvous (highest random weight) hashing: every candidate gets a score from a hash of the key and
//!   the target, the highest wins. Removing a target moves only the keys it won; they spread over the
//!   others in proportion to weight, and come back when it returns. The hashes are fixed functions of the
//!   bytes (no per-process seed), so every gateway instance sends a user to the same server.

/// Candidate targets: bit `i` set when target `i` may be picked.
pub type Candidates = u64;

/// The nth (0-based) set bit of `set`.
fn nth_bit(mut set: Candidates, n: u32) -> usize {
    for _ in 0..n {
        set &= set - 1;
    }
    set.trailing_zeros() as usize
}

/// Smooth weighted round-robin over `candidates`, updating the running scores in `current`.
pub fn round_robin(current: &mut [i64], weights: &[u32], candidates: Candidates) -> Option<usize> {
    let mut total = 0i64;
    let mut best: Option<usize> = None;
    let mut set = candidates;
    while set != 0 {
        let i = set.trailing_zeros() as usize;
        set &= set - 1;
        let w = i64::from(weights[i]);
        current[i] += w;
        total += w;
        if best.is_none_or(|b| current[i] > current[b]) {
            best = Some(i);
        }
    }
    let b = best?;
    current[b] -= total;
    Some(b)
}

/// Power of two choices: `load(i)` is target i's requests in flight.
pub fn least_requests(
    weights: &[u32],
    candidates: Candidates,
    load: impl Fn(usize) -> usize,
) -> Option<usize> {
    let n = candidates.count_ones();
    match n {
        0 => None,
        1 => Some(candidates.trailing_zeros() as usize),
        _ => {
            let a = fastrand::u32(0..n);
            let mut b = fastrand::u32(0..n - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (nth_bit(candidates, a), nth_bit(candidates, b));
            // load/weight compared without division: la * wb <= lb * wa.
            let (la, lb) = (load(a) as u64, load(b) as u64);
            let (wa, wb) = (u64::from(weights[a]), u64::from(weights[b]));
            Some(if la * wb <= lb * wa { a } else { b })
        }
    }
}

/// Rendezvous hashing: the candidate with the highest weighted score for `key`; `seeds[i]` is target i's
/// hash (`hash_bytes` of its URL).
pub fn rendezvous(
    key: u64,
    seeds: &[u64],
    weights: &[u32],
    candidates: Candidates,
) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    let mut set = candidates;
    while set != 0 {
        let i = set.trailing_zeros() as usize;
        set &= set - 1;
        // Weighted rendezvous (Schindelhauer & Schomaker): w / -ln(u), u uniform in (0, 1).
        let h = mix(key ^ seeds[i]);
        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let score = f64::from(weights[i]) / -u.ln();
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((i, score));
        }
    }
    best.map(|(i, _)| i)
}

/// FNV-1a over `bytes`, finished with `mix`: a stable 64-bit hash (affinity keys, target seeds).
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// splitmix64's finaliser: spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_round_robin_follows_weights_without_bursts() {
        let weights = [5, 1, 1];
        let mut cur = [0i64; 3];
        let picks: Vec<usize> = (0..7)
            .map(|_| round_robin(&mut cur, &weights, 0b111).unwrap())
            .collect();
        assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
        // Without target 0, the others alternate.
        let picks: Vec<usize> = (0..4)
            .map(|_| round_robin(&mut cur, &weights, 0b110).unwrap())
            .collect();
        assert_eq!(picks.iter().filter(|&&i| i == 1).count(), 2);
        assert_eq!(round_robin(&mut cur, &weights, 0), None);
    }

    #[test]
    fn least_requests_prefers_the_idle_of_two() {
        let weights = [1, 1];
        for _ in 0..50 {
            let pick = least_requests(&weights, 0b11, |i| if i == 0 { 10 } else { 0 });
            assert_eq!(pick, Some(1));
        }
        assert_eq!(least_requests(&weights, 0b10, |_| 0), Some(1));
        assert_eq!(least_requests(&weights, 0, |_| 0), None);
    }

    #[test]
    fn rendezvous_moves_only_the_removed_targets_keys() {
        let seeds: Vec<u64> = ["a", "b", "c"]
            .iter()
            .map(|s| hash_bytes(s.as_bytes()))
            .collect();
        let weights = [1, 1, 1];
        let mut counts = [0usize; 3];
        for u in 0..3000u32 {
            let key = hash_bytes(format!("user{u}").as_bytes());
            let all = rendezvous(key, &seeds, &weights, 0b111).unwrap();
            counts[all] += 1;
            let without_b = rendezvous(key, &seeds, &weights, 0b101).unwrap();
            if all != 1 {
                assert_eq!(all, without_b, "user{u} moved although its target stayed");
            }
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn nth_bit_walks_set_bits() {
        assert_eq!(nth_bit(0b1010_0100, 0), 2);
        assert_eq!(nth_bit(0b1010_0100, 1), 5);
        assert_eq!(nth_bit(0b1010_0100, 2), 7);
    }
}
