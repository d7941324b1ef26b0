//! The change log behind delta answers: which keys' offers changed after a generation.

use crate::hash::FastMap;
use crate::id::Id;
use std::collections::VecDeque;

/// One key per generation, oldest first. Generations are consecutive, so an entry's is its
/// position plus the first's, and a key's earlier entries are marked stale when it changes
/// again: a delta walks the log without a lookup per entry (one walk per puller per interval
/// over thousands of entries at N = 1 024).
#[derive(Debug, Default)]
pub(super) struct ChangeLog {
    /// The key changed at generation `first + i`.
    keys: VecDeque<Id>,
    /// Whether `keys[i]` is its key's last change (a separate queue: a flag beside each
    /// 16-byte-aligned id would double the log's memory).
    latest: VecDeque<bool>,
    /// The generation of `keys[0]`.
    first: u64,
    /// key → the generation of its latest entry in `keys`.
    last: FastMap<Id, u64>,
}

impl ChangeLog {
    /// `key`'s offer changed at generation `gen`, one past the previous entry's.
    pub(super) fn record(&mut self, gen: u64, key: Id) {
        if self.keys.is_empty() {
            self.first = gen;
        }
        debug_assert_eq!(gen, self.first + self.keys.len() as u64);
        if let Some(old) = self.last.insert(key, gen) {
            if let Some(e) = self.latest.get_mut(self.slot(old)) {
                *e = false;
            }
        }
        self.keys.push_back(key);
        self.latest.push_back(true);
    }

    /// Forgets the entries of generation `floor` and older.
    pub(super) fn prune(&mut self, floor: u64) {
        while self.first <= floor {
            let (Some(key), Some(latest)) = (self.keys.pop_front(), self.latest.pop_front()) else {
                break;
            };
            if latest {
                self.last.remove(&key);
            }
            self.first += 1;
        }
    }

    /// The keys whose offer changed after generation `since`, each once with the generation
    /// of its last change, in the order of those last changes.
    pub(super) fn since(&self, since: u64) -> impl Iterator<Item = (Id, u64)> + '_ {
        let start = since.saturating_add(1).saturating_sub(self.first);
        let start = usize::try_from(start).unwrap_or(usize::MAX).min(self.keys.len());
        let entries = self.keys.range(start..).zip(self.latest.range(start..));
        (entries.zip(self.first + start as u64..))
            .filter_map(|((k, latest), g)| latest.then_some((*k, g)))
    }

    fn slot(&self, gen: u64) -> usize {
        usize::try_from(gen.wrapping_sub(self.first)).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_listed_once_at_its_last_change() {
        let mut log = ChangeLog::default();
        for (g, k) in [(1, 7), (2, 8), (3, 7), (4, 9)] {
            log.record(g, Id(k));
        }
        let all: Vec<_> = log.since(0).collect();
        assert_eq!(all, [(Id(8), 2), (Id(7), 3), (Id(9), 4)]);
        assert_eq!(log.since(2).collect::<Vec<_>>(), [(Id(7), 3), (Id(9), 4)]);
        assert_eq!(log.since(4).count(), 0);
    }

    #[test]
    fn pruned_entries_are_forgotten() {
        let mut log = ChangeLog::default();
        for (g, k) in [(1, 7), (2, 8), (3, 7)] {
            log.record(g, Id(k));
        }
        log.prune(2);
        assert_eq!(log.since(0).collect::<Vec<_>>(), [(Id(7), 3)]);
        log.prune(3);
        assert_eq!(log.since(0).count(), 0);
        log.record(4, Id(8));
        assert_eq!(log.since(0).collect::<Vec<_>>(), [(Id(8), 4)]);
    }
}
