//! Per-user WebSocket seats: how many upgraded connections each token subject holds at once.
//!
//! Without a per-user cap one token could hold every `server.max_connections` slot with upgrades. A seat is
//! taken before the upgrade request goes upstream and given back when its [`Seat`] guard drops: when the
//! spliced connection ends, or earlier when the upgrade fails or the upstream does not answer 101.

use dashmap::DashMap;
use std::sync::Arc;

/// Open upgrades per token subject. Only subjects holding a seat have an entry, so the table never holds
/// more entries than there are open connections (bounded by `server.max_connections`).
///
/// It lives in `Lasting`: a reload must not forget the connections already open, or every reload would
/// hand each user a fresh allowance on top of the seats still taken.
#[derive(Debug, Default)]
pub struct UpgradeSeats {
    held: Arc<DashMap<String, usize>>,
}

/// The subject already holds as many upgraded connections as allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("already holds {limit} upgraded connections")]
pub struct SeatsFull {
    /// The limit in force when the seat was refused.
    pub limit: usize,
}

impl UpgradeSeats {
    /// An empty table.
    pub fn new() -> UpgradeSeats {
        UpgradeSeats::default()
    }

    /// Takes one of `sub`'s `limit` seats, or refuses when all are held.
    ///
    /// The limit is passed per call rather than stored so that a reload's new `max_websockets_per_user`
    /// applies to the next upgrade; connections already open above a lowered limit are left alone.
    pub fn take(&self, sub: &str, limit: usize) -> Result<Seat, SeatsFull> {
        // The entry's shard lock makes the check and the increment one step, so two concurrent upgrades
        // cannot both take the last seat.
        let mut n = self.held.entry(sub.to_string()).or_insert(0);
        if *n >= limit {
            drop(n);
            // The entry may have just been created with 0 (limit 0 cannot be configured, but be tidy).
            self.held.remove_if(sub, |_, n| *n == 0);
            return Err(SeatsFull { limit });
        }
        *n += 1;
        drop(n);
        Ok(Seat {
            held: self.held.clone(),
            sub: sub.to_string(),
        })
    }

    /// Seats `sub` holds now (for tests and diagnostics).
    pub fn held(&self, sub: &str) -> usize {
        self.held.get(sub).map_or(0, |n| *n)
    }
}

/// One taken seat; dropping it gives the seat back.
#[derive(Debug)]
pub struct Seat {
    held: Arc<DashMap<String, usize>>,
    sub: String,
}

impl Drop for Seat {
    fn drop(&mut self) {
        // Decrement and remove an emptied entry under one lock, so a concurrent `take` never sees an entry
        // about to be removed (and never loses its increment to that removal).
        if let dashmap::Entry::Occupied(mut e) = self.held.entry(std::mem::take(&mut self.sub)) {
            let n = e.get_mut();
            *n = n.saturating_sub(1);
            if *n == 0 {
                e.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_are_counted_per_subject_and_given_back_on_drop() {
        let seats = UpgradeSeats::new();
        let a1 = seats.take("alice", 2).unwrap();
        let a2 = seats.take("alice", 2).unwrap();
        assert_eq!(seats.take("alice", 2).unwrap_err(), SeatsFull { limit: 2 });
        let b = seats.take("bob", 2).unwrap();
        assert_eq!(seats.held("alice"), 2);
        drop(a1);
        assert_eq!(seats.held("alice"), 1);
        let a3 = seats.take("alice", 2).unwrap();
        // A lowered limit refuses new seats but leaves the held ones alone.
        assert!(seats.take("alice", 1).is_err());
        assert_eq!(seats.held("alice"), 2);
        drop((a2, a3, b));
        assert_eq!(seats.held("alice"), 0);
        assert!(seats.held.is_empty(), "emptied entries are removed");
    }
}
