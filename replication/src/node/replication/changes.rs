//! The change log behind delta answers: which keys' offers changed after a generation, and
//! which push round, if any, carried each change.

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
    /// The push round (`Replication::flushes` after it) that last carried `keys[i]`'s
    /// change, 0 if none: a puller's next delta leaves out what a round since its last pull
    /// carried. Kept here rather than in a table of pushed keys, which cost as much memory
    /// as the copies' change log itself at N = 8 192.
    pushed: VecDeque<u64>,
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
        self.pushed.push_back(0);
    }

    /// Push round `round` carried `key`'s offer as of its last change.
    pub(super) fn mark_pushed(&mut self, key: Id, round: u64) {
        if let Some(&gen) = self.last.get(&key) {
            if let Some(e) = self.pushed.get_mut(self.slot(gen)) {
                *e = round;
            }
        }
    }

    /// Forgets the entries of generation `floor` and older.
    pub(super) fn prune(&mut self, floor: u64) {
        while self.first <= floor {
            let (Some(key), Some(latest)) = (self.keys.pop_front(), self.latest.pop_front()) else {
                break;
            };
            self.pushed.pop_front();
            if latest {
                self.last.remove(&key);
            }
            self.first += 1;
        }
    }

    /// The keys whose offer changed after generation `since`, each once with the push round
    /// that carried its last change (0: none), in the order of those last changes.
    pub(super) fn since(&self, since: u64) -> impl Iterator<Item = (Id, u64)> + '_ {
        let start = since.saturating_add(1).saturating_sub(self.first);
        let start = usize::try_from(start).unwrap_or(usize::MAX).min(self.keys.len());
        let entries = self.keys.range(start..).zip(self.latest.range(start..));
        (entries.zip(self.pushed.range(start..)))
            .filter_map(|((k, latest), round)| latest.then_some((*k, *round)))
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
        let keys = |since| log.since(since).map(|(k, _)| k.0).collect::<Vec<_>>();
        assert_eq!(keys(0), [8, 7, 9]);
        assert_eq!(keys(2), [7, 9]);
        assert_eq!(keys(4), [0u128; 0]);
    }

    #[test]
    fn pruned_entries_are_forgotten() {
        let mut log = ChangeLog::default();
        for (g, k) in [(1, 7), (2, 8), (3, 7)] {
            log.record(g, Id(k));
        }
        log.prune(2);
        assert_eq!(log.since(0).collect::<Vec<_>>(), [(Id(7), 0)]);
        log.prune(3);
        assert_eq!(log.since(0).count(), 0);
        log.record(4, Id(8));
        assert_eq!(log.since(0).collect::<Vec<_>>(), [(Id(8), 0)]);
    }

    #[test]
    fn a_push_marks_the_last_change_until_the_key_changes_again() {
        let mut log = ChangeLog::default();
        log.record(1, Id(7));
        log.record(2, Id(8));
        log.mark_pushed(Id(7), 5);
        log.mark_pushed(Id(9), 5);
        assert_eq!(log.since(0).collect::<Vec<_>>(), [(Id(7), 5), (Id(8), 0)]);
        log.record(3, Id(7));
        assert_eq!(log.since(0).collect::<Vec<_>>(), [(Id(8), 0), (Id(7), 0)]);
    }
}
